"""retarget.segmenter: per-visitor state and durable, wall-clock-driven triggers (faust)."""

"""retarget.composer: turns triggers into complete, compliant RFC 5322 messages."""

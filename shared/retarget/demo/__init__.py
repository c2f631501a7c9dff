"""`retarget demo`: the whole system on the local stack, end to end, for a newcomer to watch."""

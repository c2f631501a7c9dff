"""retarget.common: the library every service shares.

Nothing here connects at import time. Pure modules (schemas, topics, clock, tokens) import
no I/O library; adapters (kafka, db, smtp) are small and build their clients on demand.
"""

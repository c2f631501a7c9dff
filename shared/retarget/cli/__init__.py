"""The `retarget` command: one entry point, one sub-command module per concern."""

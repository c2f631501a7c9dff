"""Workspace configuration as data (issue #14): versioned in PostgreSQL, fed to every
service through the compacted topic `<prefix>.config.v1`. See docs/management.md."""

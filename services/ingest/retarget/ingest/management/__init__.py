"""The management API: /v1/workspaces/{workspace_id}/… (docs/management.md, "API").

One router per resource (routes.py lists them); every route needs a secret key with scope
`admin` of the workspace in the path (access.py).
"""

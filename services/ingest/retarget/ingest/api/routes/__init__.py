"""One module per resource: the Segment tracking API and the operations endpoints."""

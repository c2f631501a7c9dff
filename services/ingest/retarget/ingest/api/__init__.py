"""HTTP layer: routes, dependencies, error translation and request metrics."""

"""the executor, its gates, the preflight, the status and the lifecycle operations."""

"""the services around Kafka: Connect workers, the schema registry, metrics endpoints."""

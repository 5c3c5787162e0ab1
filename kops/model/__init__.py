"""the inventory model: spec, strict YAML loading, topology, Kafka's config definitions."""

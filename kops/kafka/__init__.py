"""Kafka itself through its clients and tools: probes, topics and data, messages, reassignment, ZooKeeper's shell."""

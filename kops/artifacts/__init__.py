"""Kafka distributions, images, CDS archives, Connect plugins, Kafka's tool launchers."""

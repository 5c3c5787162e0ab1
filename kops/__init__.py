"""kops: stand up, check and tear down Apache Kafka clusters."""

__version__ = "0.1.0"

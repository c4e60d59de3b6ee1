"""Bridges: canonical Avro topics -> legacy Redis keys/channels and NATS JetStream subjects."""

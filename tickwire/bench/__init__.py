"""`tickwire bench`: benchmark scenarios against the local Kafka, Redis and NATS (see cli.py)."""

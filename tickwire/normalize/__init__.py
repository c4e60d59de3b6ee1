"""Stage 2, the normalizer: ``<vendor>.raw`` -> Avro canonical topics, exactly-once, bad input to the DLQ."""

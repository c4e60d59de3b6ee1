"""The contract every stage stands on and none owns: envelope, records, codec, topics, DLQ, protocols."""

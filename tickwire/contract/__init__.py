"""The contract every stage stands on and none owns: envelope, records, codec, amounts, topics, DLQ, protocols."""

"""Normalization: pure vendor parsers, canonical records, the Avro codec and the faust app."""

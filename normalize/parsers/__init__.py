"""Pure vendor parsers: raw bytes + envelope (+ explicit state) -> canonical records. No I/O."""

"""Local vendor simulators speaking each vendor's real wire protocol (see `base` for the harness)."""

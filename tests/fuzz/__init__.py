"""The fuzz job's seeds and command line (``make fuzz``); the engine is ``tickwire.fuzz``."""

"""Stage 1, producers: the one producer wrapper, the one reconnect runner, health; vendors from the registry."""

"""Stage 1, producers: the producer wrapper, the reconnect runner, the publisher, health."""

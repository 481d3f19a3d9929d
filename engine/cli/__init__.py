"""The `vinci` command line, on top of the engine: nothing in `engine` imports it."""

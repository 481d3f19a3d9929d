"""The tar layer: one deterministic writer, one streaming reader, one compression sniffer."""

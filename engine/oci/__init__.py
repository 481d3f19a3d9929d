"""OCI values: digests, descriptors, media types, references, canonical JSON, and the
Image and Layer protocols. Nothing here touches the filesystem or the network."""

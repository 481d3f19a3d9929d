"""Reading existing images: OCI layouts, OCI archives and docker-archives, for import.

Modules:
- `files`: the files of a layout directory or a tar archive, streamed (tar members are read in
  place, never extracted or loaded whole);
- `manifests`: parsing manifests and indexes, choosing the image for a platform or tag;
- `local`: a local image (layout, OCI archive, docker-archive) resolved to config + layers;
- `ingest`: bringing a blob into the cache with its digest and diff_id verified.

Nothing here imports httpx: local builds stay free of the registry client.
"""

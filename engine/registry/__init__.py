"""The registry side of vinci: an OCI distribution client, push, and import-oci pulls.

Modules, one job each:
- `options`: connection policy (CA bundle, insecure hosts, limits, retries, chunking);
- `hosts`: registry names as docker maps them (API host, credential key, loopback);
- `dockerconfig`: credentials from docker's config.json and docker-credential-* helpers;
- `auth`: WWW-Authenticate challenges, Basic and Bearer tokens;
- `retry`: which failures are retried, and how long to wait (Retry-After honoured);
- `client`: one registry's API (manifests, blobs, upload steps), digests verified;
- `upload`: one blob into a repository: HEAD, mount, monolithic or chunked upload;
- `push`: an image from the cache to a repository;
- `pull`: `resolve` (tag -> digest) and the import-oci layer;
- `sources`: which repository each cached blob came from, and its verified diff_id.

Nothing is imported here, so `engine.cache.provenance` (used by local imports) does not pull in
httpx; import the module you need.
"""

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

import sys

# Importing httpx also imports its command-line client (httpx._main), and with it rich, click
# and pygments when they are installed (the workbench installs rich): ~40 ms of every registry
# command's start-up, the fleet cache's hit path included, for a `main` vinci never calls. A
# None entry makes that one import fail as it does when they are missing, and httpx keeps its
# stub. Nothing else of httpx changes.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

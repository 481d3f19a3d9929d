"""Test support layer: real registries, fault injection and independent image verifiers.

Nothing here imports vinci. The point of these helpers is to check vinci's output with tools
that do not share its code: Debian's `docker-registry` (distribution 2.8), skopeo, umoci,
oci-image-tool and podman. Modules:

- `verify`: run the independent tools on an image and raise AssertionError with their stderr.
- `registry`: `RegistryServer`, a real registry on 127.0.0.1:0 (plain, basic auth, TLS, token).
- `tokenserver`: an in-process bearer-token issuer for the registry's token auth.
- `faultproxy`: `FaultProxy`, a scripted loopback HTTP proxy that injects faults and counts.
"""

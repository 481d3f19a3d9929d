"""The `accounts` layer: the base's /etc/passwd and /etc/group with the spec's users and
groups added, written as one layer above every layer of the spec.

The base's files are what the layers below would unpack to: the topmost entry for each path
wins, a whiteout of it (or an opaque /etc) above removes it. Lines are kept byte for byte and
in order; a spec account whose name and id match a base line replaces that line, one that
shares only its name or only its id with a base account is a spec error naming both (an image
where `app` is uid 999 in one place and 1000 in another is a bug waiting for its first volume).
New lines follow the base's, in spec order.

The layer's cache key covers the accounts as written and the diff_ids of every layer below:
an unchanged base means nothing is read. When a layer below changed but the two files come
out the same (an app's layer changed), the layer is found again by its contents' key and not
rewritten. Otherwise the layers are read top down, each once,
until both files are found; only those two files' contents are kept, at most MAX_FILE bytes.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from engine.builder.layer import write_layer
from engine.builder.plan import LayerPlan, PlannedEntry, cache_key
from engine.builder.result import LayerResult
from engine.cache.records import LayerRecord, RecordIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec
from engine.errors import LayerReadError, SourceError, SpecError, SpecProblem
from engine.events import EventSink, LayerCached
from engine.oci.canonical import canonical_json
from engine.oci.digest import Digest
from engine.spec.model import AccountsSpec, GroupSpec, UserSpec
from engine.tar.compression import DECODE_ERRORS, decompressed
from engine.tar.format import TAR_FORMAT
from engine.tar.read import TarReader

if TYPE_CHECKING:
    from engine.builder.remote import RemoteCache

ACCOUNTS_FORMAT = "vinci-accounts/1"
PASSWD, GROUP = "etc/passwd", "etc/group"
MAX_FILE = 16 << 20  # an /etc/passwd larger than this is not one
SUMMARY = "accounts"

Account = TypeVar("Account", UserSpec, GroupSpec)


@dataclass(frozen=True)
class _Found:
    data: bytes | None  # None: the path is absent (never written, or whited out)
    where: str  # the layer it came from, for messages


def accounts_key(
    accounts: AccountsSpec, below: Sequence[LayerResult], mtime: int, codec: Codec
) -> str:
    body = {
        "kind": ACCOUNTS_FORMAT,
        "tar": TAR_FORMAT,
        "codec": codec.identity,
        "mtime": mtime,
        "groups": [[g.name, g.gid, list(g.members)] for g in accounts.groups],
        "users": [[u.name, u.uid, u.gid, u.shell, u.homedir] for u in accounts.users],
        "below": [str(d) for r in below for d in r.record.diff_ids],
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def accounts_layer(
    accounts: AccountsSpec,
    below: Sequence[LayerResult],
    store: BlobStore,
    codec: Codec,
    mtime: int,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
    threads: int,
    remote: RemoteCache | None = None,
) -> tuple[LayerRecord, bool]:
    """The accounts layer's record, from the cache (the local one, else `remote`) or written
    now; and whether it was cached. A record `remote` lacks is offered to it."""
    key = accounts_key(accounts, below, mtime, codec)
    records = RecordIndex(store)
    cached = records.get(key)
    if remote is not None:
        if remote.lookup(key, cached is not None) and cached is None:
            cached = remote.fetch(key, SUMMARY, store, index)
        if cached is not None:
            remote.offer(cached, store)
    if cached is not None:
        sink(LayerCached(index, key, cached.descriptors))
        return cached, True
    record, hit = _accounts_layer(
        accounts, below, store, codec, mtime, index, sink, cancel, threads, key
    )
    if remote is not None:
        remote.offer(record, store)
    return record, hit


def _accounts_layer(
    accounts: AccountsSpec,
    below: Sequence[LayerResult],
    store: BlobStore,
    codec: Codec,
    mtime: int,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
    threads: int,
    key: str,
) -> tuple[LayerRecord, bool]:
    records = RecordIndex(store)
    found = _base_files(below, store, cancel)
    passwd = _merge(
        found[PASSWD], accounts.users, "/etc/passwd", "user", _user_line, lambda u: (u.name, u.uid)
    )
    group = _merge(
        found[GROUP], accounts.groups, "/etc/group", "group", _group_line, lambda g: (g.name, g.gid)
    )
    entries = tuple(_entry(path, data) for path, data in ((GROUP, group), (PASSWD, passwd)))
    # A change below that leaves both files as they were (an app's layer) makes the same
    # bytes: the layer those bytes made is found by their own key, and not written again.
    content_key = cache_key(entries, mtime, codec)
    made = records.get(content_key)
    if made is not None:
        mine = replace(made, key=key)
        records.put(mine)
        sink(LayerCached(index, key, made.descriptors))
        return mine, True
    plan = LayerPlan(entries, key, mtime, 0)
    built = write_layer(plan, codec, store, index, sink, cancel, threads)
    record = LayerRecord(
        key=key,
        descriptors=(built.descriptor,),
        diff_ids=(built.diff_id,),
        codec=codec.identity,
        uncompressed_sizes=(built.uncompressed_size,),
        summary=SUMMARY,
    )
    records.put(record)
    records.put(replace(record, key=content_key))
    return record, False


def _entry(path: str, data: bytes) -> PlannedEntry:
    return PlannedEntry(
        path=path,
        type="file",
        mode=0o644,
        uid=0,
        gid=0,
        size=len(data),
        digest=hashlib.sha256(data).hexdigest(),
        target="",
        origin="accounts",
        source="",
        inline=data,
        stat=None,
    )


def _base_files(
    below: Sequence[LayerResult], store: BlobStore, cancel: CancelToken | None
) -> dict[str, _Found]:
    """/etc/passwd and /etc/group as the layers below leave them."""
    found: dict[str, _Found] = {}
    for r in reversed(below):
        for descriptor in reversed(r.record.descriptors):
            where = f"{r.label} (layer {descriptor.digest.short})"
            here = _scan(store, descriptor.digest, where, cancel)
            for path in (PASSWD, GROUP):
                if path not in found and path in here:
                    found[path] = here[path]
            if len(found) == 2:
                return found
    for path in (PASSWD, GROUP):
        found.setdefault(path, _Found(None, ""))
    return found


def _scan(
    store: BlobStore, digest: Digest, where: str, cancel: CancelToken | None
) -> dict[str, _Found]:
    """What one layer says of the two files: their contents, or that it removes them."""
    out: dict[str, _Found] = {}
    try:
        with store.open_blob(digest) as raw, decompressed(raw) as stream:
            reader = TarReader(stream, cancel, digests=False)
            for entry in reader:
                path = entry.path
                parent, name = posixpath.split(path)
                if parent == "etc" and name == ".wh..wh..opq":
                    # An opaque /etc hides everything below it, unless this layer writes it.
                    for wanted in (PASSWD, GROUP):
                        out.setdefault(wanted, _Found(None, where))
                    continue
                if parent == "etc" and name.startswith(".wh."):
                    path = f"etc/{name[4:]}"
                    if path in (PASSWD, GROUP):
                        out[path] = _Found(None, where)
                    continue
                if path not in (PASSWD, GROUP):
                    continue
                if entry.type != "file":
                    raise SourceError(
                        f"accounts: /{path} in {where} is a {entry.type}, not a file; vinci "
                        "merges accounts only into a regular file"
                    )
                if entry.size > MAX_FILE:
                    raise SourceError(f"accounts: /{path} in {where} is larger than 16 MiB")
                out[path] = _Found(reader.read_data(entry.size), where)
    except LayerReadError as e:
        raise SourceError(f"accounts: cannot read {where}: {e}") from None
    except DECODE_ERRORS as e:
        raise SourceError(f"accounts: cannot read {where}: {e}") from None
    return out


def _user_line(u: UserSpec) -> bytes:
    return f"{u.name}:x:{u.uid}:{u.gid}::{u.homedir}:{u.shell}\n".encode()


def _group_line(g: GroupSpec) -> bytes:
    return f"{g.name}:x:{g.gid}:{','.join(g.members)}\n".encode()


def _merge(
    base: _Found,
    accounts: Sequence[Account],
    file: str,
    what: str,
    line_of: Callable[[Account], bytes],
    ident: Callable[[Account], tuple[str, int]],
) -> bytes:
    """`base`'s lines with `accounts` merged in (see the module's text)."""
    lines = (base.data or b"").splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    by_name: dict[str, int] = {}
    by_id: dict[int, int] = {}
    for i, line in enumerate(lines):
        fields = line.rstrip(b"\n").split(b":")
        if len(fields) < 3 or line.startswith(b"#"):
            continue
        name = fields[0].decode("utf-8", "replace")
        try:
            number = int(fields[2])
        except ValueError:
            continue
        by_name.setdefault(name, i)
        by_id.setdefault(number, i)
    problems: list[SpecProblem] = []
    added: list[bytes] = []
    for account in accounts:
        name, number = ident(account)
        line = line_of(account)
        at_name, at_id = by_name.get(name), by_id.get(number)
        if at_name is not None and at_name == at_id:
            lines[at_name] = line  # the same account: the spec's fields win
            continue
        for at in (at_name, at_id):
            if at is None:
                continue
            theirs = lines[at].rstrip(b"\n").decode("utf-8", "replace")
            problems.append(
                SpecProblem(
                    account.pos,
                    f"{account.label}: {what} {name!r} ({'g' if what == 'group' else 'u'}id "
                    f"{number}) conflicts with {theirs!r} in {file} of {base.where}; use that "
                    "account's name and id, or another of each",
                )
            )
            break
        else:
            added.append(line)
    if problems:
        raise SpecError(problems)
    return b"".join(lines + added)

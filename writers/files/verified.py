"""Storing an attachment so that a blob path never holds another attachment's bytes.

Two different attachments can sanitise to the same blob path (``a?b.jpg`` and ``a*b.jpg`` both
become ``a_b.jpg`` in one folder). The rule (docs/architecture.md "Download cache"):

* the attachment is written to its blob path **only if that path is free** (atomic no-clobber);
* a blob already there counts as "already stored" only when its sha256 equals the attachment's;
* otherwise the path belongs to different bytes - a collision - and the attachment goes to its
  own **disambiguated path**, ``<stem>_<owner hash>.<ext>`` in the same folder, where the owner
  hash is 12 hex digits of sha256(owner) and ``owner`` is ``{domain}:{media_id}``. Only that
  attachment ever maps there, so it may overwrite it (a re-download whose content changed).

The inventory row records the path actually used, so every row points at a blob with its own
bytes. A cached file whose digest differs from the one taken at download is refused
(``PermanentError``; replaying the dead letter downloads again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from core.cache import is_inside, tidy
from core.errors import PermanentError
from core.security.filenames import add_stem_suffix
from domains.names import Domain
from writers.files.base import BlobExists, FileStore

OWNER_HASH_CHARS = 12


@dataclass(frozen=True)
class StoredBlob:
    blob_path: str
    """The path actually holding the attachment (its own, or the disambiguated one)."""
    destination: str
    """The store's full URI/path of that blob."""
    already_stored: bool
    """True when an identical blob was there already and nothing was written."""


def disambiguated(blob_path: str, owner: str) -> str:
    """``folder/name.ext`` -> ``folder/name_<sha256(owner)[:12]>.ext`` (at most 255 bytes a name)."""
    folder, sep, name = blob_path.rpartition("/")
    suffix = "_" + hashlib.sha256(owner.encode("utf-8")).hexdigest()[:OWNER_HASH_CHARS]
    return f"{folder}{sep}{add_stem_suffix(name, suffix)}"


def store_verified(
    store: FileStore, domain: Domain, blob_path: str, local_path: Path, *, sha256: str, owner: str
) -> StoredBlob:
    """Store ``local_path`` (whose download digest is ``sha256``) under the rule above."""
    try:
        uri = store.put_file(domain, blob_path, local_path, overwrite=False, sha256=sha256)
        return StoredBlob(blob_path, uri, already_stored=False)
    except BlobExists:
        if store.sha256(domain, blob_path) == sha256:
            return StoredBlob(blob_path, store.uri(domain, blob_path), already_stored=True)
    own = disambiguated(blob_path, owner)
    if store.sha256(domain, own) == sha256:
        return StoredBlob(own, store.uri(domain, own), already_stored=True)
    uri = store.put_file(domain, own, local_path, overwrite=True, sha256=sha256)
    return StoredBlob(own, uri, already_stored=False)


def find_stored(
    store: FileStore, domain: Domain, blob_path: str, *, sha256: str | None, owner: str
) -> StoredBlob | None:
    """The blob holding exactly these bytes (its path or the disambiguated one), else ``None``.

    Used when the cached file is gone (a redelivered upload whose first run stored it): a blob at
    the path is "already stored" only when its digest matches; without a digest nothing matches.
    """
    if not sha256:
        return None
    for path in (blob_path, disambiguated(blob_path, owner)):
        if store.sha256(domain, path) == sha256:
            return StoredBlob(path, store.uri(domain, path), already_stored=True)
    return None


def upload_cached(
    store: FileStore,
    cache_root: Path,
    domain: Domain,
    blob_path: str,
    local_path: str | None,
    *,
    sha256: str | None,
    owner: str,
) -> StoredBlob:
    """The upload stage's work: store the cached file by the rule above, then remove it.

    * a ``local_path`` outside ``cache_root`` is refused (a forged message must not make the
      pipeline upload an arbitrary local file);
    * a missing cached file is fine when :func:`find_stored` finds these bytes stored (a
      redelivered upload), else ``PermanentError`` (replaying the dead letter downloads again);
    * the cached file must still have the download's digest.
    """
    if local_path and not is_inside(cache_root, local_path):
        raise PermanentError("Cached file path is outside CACHE_DIR; replay re-downloads it")
    if not local_path or not Path(local_path).is_file():
        found = find_stored(store, domain, blob_path, sha256=sha256, owner=owner)
        if found is not None:
            return found
        raise PermanentError(
            "Cached file missing and no stored blob has its checksum; replay re-downloads it"
        )
    if not sha256:
        raise PermanentError("Cached file has no checksum on record; replay re-downloads it")
    local = Path(local_path)
    stored = store_verified(store, domain, blob_path, local, sha256=sha256, owner=owner)
    tidy(local, cache_root)
    return stored

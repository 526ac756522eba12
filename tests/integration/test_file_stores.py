"""One contract suite for every FileStore: the local directory and OneLake (ADLS Gen2 over real HTTP).

The OneLake store runs against ``tests/fakes/adls_server.py`` (Azurite has no DFS endpoint), which
verifies SharedKey signatures and speaks the create/append/flush/properties/read/delete calls.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential

from core.errors import AuthError, PermanentError, TransientError
from core.settings import load_settings
from domains.names import Domain
from tests.fakes.adls_server import FakeAdlsServer
from writers.files import FileStore, LocalFileStore, OneLakeFileStore, file_store_from_settings
from writers.files.base import BlobExists
from writers.files.local import kernel_copy
from writers.files.onelake import CHUNK_BYTES
from writers.files.verified import StoredBlob, store_verified

pytestmark = pytest.mark.integration

ACCOUNT = "onelake"
KEY = base64.b64encode(b"fake-adls-account-key-0123456789").decode()
ROOTS = {
    Domain.XACT: "abfss://workspace@onelake.dfs.fabric.microsoft.com/lakehouse/Files/veriskPipeline/xact",
    Domain.CLAIMX: "abfss://workspace@onelake.dfs.fabric.microsoft.com/lakehouse/Files/veriskPipeline/claimx",
}


@dataclass
class StoreCase:
    store: FileStore
    kind: str
    server: FakeAdlsServer | None = None

    def expected_uri(self, domain: Domain, blob_path: str, root: Path) -> str:
        if self.kind == "onelake":
            return f"{ROOTS[domain]}/{blob_path}"
        return str((root / domain.value / blob_path).resolve())


@pytest.fixture(scope="module")
def adls() -> Iterator[FakeAdlsServer]:
    with FakeAdlsServer({ACCOUNT: KEY}, file_systems={"workspace"}) as server:
        yield server


def _onelake(server: FakeAdlsServer, key: str = KEY, roots: dict[Domain, str] = ROOTS) -> OneLakeFileStore:
    return OneLakeFileStore(
        roots, AzureNamedKeyCredential(ACCOUNT, key), account_url=server.account_url(ACCOUNT), retry_total=0
    )


@pytest.fixture(params=["local", "onelake"])
def case(request: pytest.FixtureRequest, tmp_path: Path, adls: FakeAdlsServer) -> Iterator[StoreCase]:
    if request.param == "local":
        yield StoreCase(LocalFileStore(tmp_path / "files"), "local")
    else:
        adls.files.clear()
        store = _onelake(adls)
        yield StoreCase(store, "onelake", adls)
        store.close()


def _file(tmp_path: Path, content: bytes, name: str = "cached.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- the contract -------------------------------------------------------------------------------


def test_put_file__roundtrips_and_returns_the_destination(case: StoreCase, tmp_path: Path) -> None:
    blob = "documentsReceived/A-7100451/3f9b2c1e/A-7100451_Inspection Report (1).pdf"
    uri = case.store.put_file(Domain.XACT, blob, _file(tmp_path, b"%PDF-1.7 test"))
    assert uri == case.expected_uri(Domain.XACT, blob, tmp_path / "files")
    assert case.store.exists(Domain.XACT, blob)
    assert case.store.read_bytes(Domain.XACT, blob) == b"%PDF-1.7 test"


def test_put_file__overwrites_idempotently(case: StoreCase, tmp_path: Path) -> None:
    blob = "5010001/media/880001_kitchen_ceiling.jpg"
    first = case.store.put_file(Domain.CLAIMX, blob, _file(tmp_path, b"old content, longer", "a"))
    second = case.store.put_file(Domain.CLAIMX, blob, _file(tmp_path, b"new", "b"))
    assert first == second
    assert case.store.read_bytes(Domain.CLAIMX, blob) == b"new"


def test_put_file__large_file_streams_in_several_blocks(case: StoreCase, tmp_path: Path) -> None:
    content = os.urandom(2 * CHUNK_BYTES + 12345)
    case.store.put_file(Domain.XACT, "big/video.mp4", _file(tmp_path, content))
    assert case.store.read_bytes(Domain.XACT, "big/video.mp4") == content
    if case.server is not None:
        appends = [
            path for method, path in case.server.requests if method == "PATCH" and "action=append" in path
        ]
        assert len(appends) >= 3


def test_put_file__empty_file_exists_and_is_empty(case: StoreCase, tmp_path: Path) -> None:
    case.store.put_file(Domain.XACT, "empty.txt", _file(tmp_path, b""))
    assert case.store.exists(Domain.XACT, "empty.txt")
    assert case.store.read_bytes(Domain.XACT, "empty.txt") == b""


def test_domains__are_separate_folders(case: StoreCase, tmp_path: Path) -> None:
    case.store.put_file(Domain.XACT, "same/name.bin", _file(tmp_path, b"xact", "x"))
    case.store.put_file(Domain.CLAIMX, "same/name.bin", _file(tmp_path, b"claimx", "c"))
    assert case.store.read_bytes(Domain.XACT, "same/name.bin") == b"xact"
    assert case.store.read_bytes(Domain.CLAIMX, "same/name.bin") == b"claimx"


def test_missing_file__exists_false_read_permanent_delete_false(case: StoreCase) -> None:
    assert not case.store.exists(Domain.XACT, "no/such/file.pdf")
    with pytest.raises(PermanentError):
        case.store.read_bytes(Domain.XACT, "no/such/file.pdf")
    assert case.store.delete(Domain.XACT, "no/such/file.pdf") is False


def test_delete__removes_the_file(case: StoreCase, tmp_path: Path) -> None:
    case.store.put_file(Domain.XACT, "d/file.bin", _file(tmp_path, b"x"))
    assert case.store.delete(Domain.XACT, "d/file.bin") is True
    assert not case.store.exists(Domain.XACT, "d/file.bin")


def test_put_file__missing_local_file_is_permanent(case: StoreCase, tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        case.store.put_file(Domain.XACT, "a.bin", tmp_path / "never-downloaded.bin")


def test_put_file__no_clobber_refuses_an_existing_blob(case: StoreCase, tmp_path: Path) -> None:
    blob = "A-9/photo.jpg"
    case.store.put_file(Domain.XACT, blob, _file(tmp_path, b"first", "a"), overwrite=False)
    with pytest.raises(BlobExists):
        case.store.put_file(Domain.XACT, blob, _file(tmp_path, b"second", "b"), overwrite=False)
    assert case.store.read_bytes(Domain.XACT, blob) == b"first"


def test_put_file__no_clobber_empty_file(case: StoreCase, tmp_path: Path) -> None:
    case.store.put_file(Domain.XACT, "e/empty.txt", _file(tmp_path, b""), overwrite=False)
    assert case.store.read_bytes(Domain.XACT, "e/empty.txt") == b""


def test_put_file__wrong_sha256_writes_nothing(case: StoreCase, tmp_path: Path) -> None:
    source = _file(tmp_path, b"bytes on disk")
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        case.store.put_file(Domain.XACT, "h/x.bin", source, sha256=hashlib.sha256(b"other").hexdigest())
    assert not case.store.exists(Domain.XACT, "h/x.bin")
    good = hashlib.sha256(b"bytes on disk").hexdigest()
    case.store.put_file(Domain.XACT, "h/x.bin", source, sha256=good)
    assert case.store.sha256(Domain.XACT, "h/x.bin") == good
    assert case.store.sha256(Domain.XACT, "h/none.bin") is None


def test_store_verified__collision_gets_its_own_path_identical_bytes_are_stored(
    case: StoreCase, tmp_path: Path
) -> None:
    blob = "A-10/a_b.pdf"
    first, second = _file(tmp_path, b"first attachment", "1"), _file(tmp_path, b"second attachment", "2")
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)}
    a = store_verified(case.store, Domain.XACT, blob, first, sha256=digest[first], owner="xact:1")
    b = store_verified(case.store, Domain.XACT, blob, second, sha256=digest[second], owner="xact:2")
    again = store_verified(case.store, Domain.XACT, blob, second, sha256=digest[second], owner="xact:2")
    assert (a.blob_path, a.already_stored) == (blob, False)
    assert (b.blob_path, b.already_stored) == ("A-10/a_b_" + b.blob_path.rsplit("_", 1)[1], False)
    assert again == StoredBlob(b.blob_path, b.destination, already_stored=True)
    assert case.store.read_bytes(Domain.XACT, blob) == b"first attachment"
    assert case.store.read_bytes(Domain.XACT, b.blob_path) == b"second attachment"


@pytest.mark.parametrize(
    "blob_path",
    ["/etc/passwd", "../escape.bin", "a/../../escape.bin", "a//b", "./a", "a\\..\\b", "", "x" * 256],
)
def test_hostile_blob_paths__refused_before_any_io(case: StoreCase, tmp_path: Path, blob_path: str) -> None:
    source = _file(tmp_path, b"evil")
    requests_before = len(case.server.requests) if case.server else 0
    for call in (
        lambda: case.store.put_file(Domain.XACT, blob_path, source),
        lambda: case.store.exists(Domain.XACT, blob_path),
        lambda: case.store.read_bytes(Domain.XACT, blob_path),
        lambda: case.store.delete(Domain.XACT, blob_path),
    ):
        with pytest.raises(PermanentError):
            call()
    if case.server:
        assert len(case.server.requests) == requests_before
    else:
        written = list((tmp_path / "files").rglob("*")) if (tmp_path / "files").exists() else []
        assert written == [] and not (tmp_path / "escape.bin").exists()


# --- OneLake specifics: error classification over real HTTP -------------------------------------


def test_onelake__wrong_account_key_is_auth_error(adls: FakeAdlsServer, tmp_path: Path) -> None:
    store = _onelake(adls, key=base64.b64encode(b"another-key-another-key-another!").decode())
    with pytest.raises(AuthError) as caught:
        store.put_file(Domain.XACT, "a.bin", _file(tmp_path, b"x"))
    assert caught.value.http_status == 403
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "ServerBusy", TransientError),
        (500, "InternalError", TransientError),
        (429, "TooManyRequests", TransientError),
        (403, "AuthorizationPermissionMismatch", AuthError),
        (409, "LeaseIdMissing", PermanentError),
    ],
)
def test_onelake__service_errors_are_classified(
    adls: FakeAdlsServer, tmp_path: Path, status: int, code: str, expected: type
) -> None:
    store = _onelake(adls)
    adls.inject_fault(status, code, method="PUT")
    with pytest.raises(expected) as caught:
        store.put_file(Domain.XACT, "faulty.bin", _file(tmp_path, b"x"))
    assert caught.value.http_status == status


def test_onelake__sdk_retries_a_transient_fault_then_succeeds(adls: FakeAdlsServer, tmp_path: Path) -> None:
    store = OneLakeFileStore(
        ROOTS,
        AzureNamedKeyCredential(ACCOUNT, KEY),
        account_url=adls.account_url(ACCOUNT),
        retry_total=2,
        retry_backoff_seconds=0.1,
    )
    adls.inject_fault(503, "ServerBusy", method="PUT")
    store.put_file(Domain.XACT, "retried.bin", _file(tmp_path, b"ok"))
    assert store.read_bytes(Domain.XACT, "retried.bin") == b"ok"


def test_onelake__unknown_filesystem_is_permanent(adls: FakeAdlsServer, tmp_path: Path) -> None:
    roots = {Domain.XACT: "abfss://no-such-workspace@onelake.dfs.fabric.microsoft.com/lh/Files/xact"}
    with pytest.raises(PermanentError):
        _onelake(adls, roots=roots).put_file(Domain.XACT, "a.bin", _file(tmp_path, b"x"))


def test_onelake__unreachable_service_is_transient(tmp_path: Path) -> None:
    store = OneLakeFileStore(
        ROOTS,
        AzureNamedKeyCredential(ACCOUNT, KEY),
        account_url="http://127.0.0.1:9/x",
        retry_total=0,
        timeout_seconds=2,
    )
    with pytest.raises(TransientError):
        store.put_file(Domain.XACT, "a.bin", _file(tmp_path, b"x"))


def test_onelake__domain_without_root_is_permanent(adls: FakeAdlsServer, tmp_path: Path) -> None:
    store = _onelake(adls, roots={Domain.XACT: ROOTS[Domain.XACT]})
    with pytest.raises(PermanentError):
        store.put_file(Domain.CLAIMX, "a.bin", _file(tmp_path, b"x"))


def test_file_store_from_settings__local_by_default(tmp_path: Path) -> None:
    store = file_store_from_settings(load_settings(lake_dir=tmp_path))
    assert isinstance(store, LocalFileStore) and store.root == (tmp_path / "files").resolve()


# --- local store: the kernel moves the bytes (issue 9) -------------------------------------------


def test_local__same_file_system_publishes_a_hard_link_not_a_copy(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    source = _file(tmp_path, os.urandom(3 * 1024 * 1024 + 7))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    uri = store.put_file(Domain.XACT, "a/linked.bin", source, overwrite=False, sha256=digest)
    assert os.stat(uri).st_ino == os.stat(source).st_ino  # no byte was copied
    assert list((tmp_path / "files" / ".incoming").iterdir()) == []  # no temp file left behind
    source.unlink()  # the upload stage removes the cached name; the published file stays whole
    assert hashlib.sha256(Path(uri).read_bytes()).hexdigest() == digest


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system (tmpfs)")
def test_local__another_file_system_is_copied_by_the_kernel_and_checked(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        content = os.urandom(9 * 1024 * 1024 + 3)  # above the inline-digest size: threaded check
        source = _file(shm, content)
        good = hashlib.sha256(content).hexdigest()
        with pytest.raises(PermanentError, match="sha256 mismatch"):
            store.put_file(Domain.XACT, "b/copied.bin", source, sha256="0" * 64)
        assert not store.exists(Domain.XACT, "b/copied.bin")
        uri = store.put_file(Domain.XACT, "b/copied.bin", source, sha256=good)
        assert os.stat(uri).st_ino != os.stat(source).st_ino
        assert Path(uri).read_bytes() == content
        assert list((tmp_path / "files" / ".incoming").iterdir()) == []
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_kernel_copy__copies_from_the_current_position_to_the_end(tmp_path: Path) -> None:
    content = os.urandom(2 * 1024 * 1024 + 5)
    source, target = _file(tmp_path, content), tmp_path / "copy.bin"
    with source.open("rb") as reader, target.open("wb") as writer:
        reader.seek(5)
        assert kernel_copy(reader.fileno(), writer.fileno()) == len(content) - 5
    assert target.read_bytes() == content[5:]


# --- OneLake: parallel chunked appends, digest checked before the flush (issue 9) ------------------


def _requests_of(server: FakeAdlsServer, action: str) -> list[str]:
    return [path for method, path in server.requests if method == "PATCH" and f"action={action}" in path]


def test_onelake__appends_chunks_in_parallel_at_their_positions(adls: FakeAdlsServer, tmp_path: Path) -> None:
    chunk = 256 * 1024
    store = OneLakeFileStore(
        ROOTS,
        AzureNamedKeyCredential(ACCOUNT, KEY),
        account_url=adls.account_url(ACCOUNT),
        retry_total=0,
        max_concurrency=4,
        chunk_bytes=chunk,
    )
    content = os.urandom(10 * chunk + 999)
    adls.requests.clear()
    adls.max_appends_in_flight, adls.append_delay_seconds = 0, 0.05
    try:
        store.put_file(
            Domain.XACT, "par/v.mp4", _file(tmp_path, content), sha256=hashlib.sha256(content).hexdigest()
        )
    finally:
        adls.append_delay_seconds = 0.0
        store.close()
    positions = sorted(int(p.split("position=")[1].split("&")[0]) for p in _requests_of(adls, "append"))
    assert positions == list(range(0, len(content), chunk))  # 11 appends, each at its offset
    assert 2 <= adls.max_appends_in_flight <= 4  # parallel, and bounded by max_concurrency
    assert len(_requests_of(adls, "flush")) == 1
    assert adls.content(ACCOUNT, "workspace", "lakehouse/Files/veriskPipeline/xact/par/v.mp4") == content


@pytest.mark.parametrize("overwrite", [True, False])
def test_onelake__digest_mismatch_is_found_before_the_flush(
    adls: FakeAdlsServer, tmp_path: Path, overwrite: bool
) -> None:
    store = _onelake(adls)
    content = os.urandom(2 * CHUNK_BYTES + 1)  # several appends: the digest is taken from them
    adls.requests.clear()
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        store.put_file(Domain.XACT, "m/x.bin", _file(tmp_path, content), overwrite=overwrite, sha256="0" * 64)
    assert _requests_of(adls, "append") and not _requests_of(adls, "flush")  # nothing committed
    assert not store.exists(Domain.XACT, "m/x.bin")  # and the file this call created is gone

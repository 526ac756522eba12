"""One contract suite for every FileStore: the local directory and OneLake (ADLS Gen2 over real HTTP).

The OneLake store runs against ``tests/fakes/adls_server.py`` (Azurite has no DFS endpoint), which
verifies SharedKey signatures and speaks the create/append/flush/properties/read/delete calls.
"""

from __future__ import annotations

import base64
import os
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
from writers.files.onelake import CHUNK_BYTES

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

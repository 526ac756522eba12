"""Blob paths never leave their domain folder (writers.files.paths, writers.files.local)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigError, PermanentError
from domains.names import Domain
from writers.files import LocalFileStore, parse_abfss, validate_blob_path

HOSTILE = [
    "",
    "/etc/passwd",
    "C:/Windows/x",
    "../x",
    "a/../../x",
    "a/..",
    "./a",
    "a//b",
    "a/",
    "a\\..\\b",
    "a/\x00b",
    "a/\nb",
    "x" * 256,
    "é" * 128,
]


@pytest.mark.parametrize("blob_path", HOSTILE)
def test_validate_blob_path__refuses_hostile_paths(blob_path: str) -> None:
    with pytest.raises(PermanentError):
        validate_blob_path(blob_path)


@pytest.mark.parametrize(
    "blob_path",
    [
        "a.pdf",
        "documentsReceived/A-1/t/A-1_photo 2.jpg",
        "x" * 255,
        "5010001/media/880001_kitchen ceiling (1).jpg",
        "..a/b..",
        "é" * 127,
    ],
)
def test_validate_blob_path__accepts_relative_clean_paths(blob_path: str) -> None:
    assert validate_blob_path(blob_path) == blob_path


def test_local_store__refuses_a_symlink_that_escapes_the_domain_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "lake" / "xact").mkdir(parents=True)
    os.symlink(outside, tmp_path / "lake" / "xact" / "link")
    source = tmp_path / "src.bin"
    source.write_bytes(b"data")
    store = LocalFileStore(tmp_path / "lake")
    with pytest.raises(PermanentError, match="outside"):
        store.put_file(Domain.XACT, "link/evil.bin", source)
    assert list(outside.iterdir()) == []


def test_local_store__leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"data")
    store = LocalFileStore(tmp_path / "lake")
    destination = store.put_file(Domain.CLAIMX, "p/media/a.bin", source)
    assert destination == str((tmp_path / "lake" / "claimx" / "p" / "media" / "a.bin").resolve())
    assert [p.name for p in (tmp_path / "lake" / "claimx" / "p" / "media").iterdir()] == ["a.bin"]


def test_parse_abfss__splits_filesystem_host_and_directory() -> None:
    root = parse_abfss("abfss://ws-guid@onelake.dfs.fabric.microsoft.com/lh-guid/Files/veriskPipeline/xact/")
    assert (root.file_system, root.account_host, root.directory) == (
        "ws-guid",
        "onelake.dfs.fabric.microsoft.com",
        "lh-guid/Files/veriskPipeline/xact",
    )
    assert root.account_url == "https://onelake.dfs.fabric.microsoft.com"
    assert root.uri == "abfss://ws-guid@onelake.dfs.fabric.microsoft.com/lh-guid/Files/veriskPipeline/xact"


@pytest.mark.parametrize(
    "uri",
    [
        "https://acct.dfs.core.windows.net/fs/dir",
        "abfss://onelake.dfs.fabric.microsoft.com/x",
        "abfss://@host/x",
    ],
)
def test_parse_abfss__rejects_other_shapes(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse_abfss(uri)

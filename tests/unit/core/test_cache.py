"""The download cache's own rules (issue 7 items 8 and 11), on the real file system."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from core.cache import CACHE_FILE_NAME, cache_file, is_inside, os_error, prepare_root, tidy, verify_sha256
from core.errors import ConfigError, ErrorCategory, PermanentError


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_prepare_root__creates_private_folders(tmp_path: Path) -> None:
    root = tmp_path / "a" / "cache"
    prepare_root(root)
    assert _mode(root) == 0o700
    path = cache_file(root, "xact", "m-1", "run-1")
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert _mode(folder) & 0o077 == 0, oct(_mode(folder))


def test_prepare_root__tightens_a_world_writable_root(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    os.chmod(root, 0o1777)
    prepare_root(root)
    assert _mode(root) == 0o700


def test_prepare_root__refuses_a_symlink_or_a_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ConfigError, match="not a symbolic link"):
        prepare_root(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        prepare_root(tmp_path / "file")


@pytest.mark.parametrize(
    "media_id",
    ["880001", "../../../etc", "a/b/../../..", "/absolute", "x" * 5000, "nul\x00byte", "é" * 300, "..", ""],
)
def test_cache_file__api_ids_never_form_the_path(tmp_path: Path, media_id: str) -> None:
    root = tmp_path / "cache"
    path = cache_file(root, "claimx", media_id, "0b9f-task-id")
    assert is_inside(root, path) and path.name == CACHE_FILE_NAME
    relative = path.relative_to(root.resolve())
    assert len(relative.parts) == 4 and all(len(p) <= 32 for p in relative.parts)
    assert not media_id or media_id not in relative.parts[1:]  # the id is hashed, never a folder name


def test_cache_file__same_media_other_run_gets_another_file(tmp_path: Path) -> None:
    a = cache_file(tmp_path, "xact", "m", "run-a")
    b = cache_file(tmp_path, "xact", "m", "run-b")
    assert a != b and a.parent.parent == b.parent.parent


def test_cache_file__bad_domain_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        cache_file(tmp_path, "../x", "m", "r")


@pytest.mark.parametrize(
    "code, category",
    [
        (errno.ENAMETOOLONG, ErrorCategory.PERMANENT),
        (errno.EACCES, ErrorCategory.PERMANENT),
        (errno.EROFS, ErrorCategory.PERMANENT),
        (errno.ENOSPC, ErrorCategory.TRANSIENT),
        (errno.EDQUOT, ErrorCategory.TRANSIENT),
        (errno.EIO, ErrorCategory.TRANSIENT),
    ],
)
def test_os_error__classified_by_meaning_and_names_no_path(code: int, category: ErrorCategory) -> None:
    err = os_error(OSError(code, os.strerror(code), "/srv/cache/xact/" + "n" * 300 + ".part"))
    assert err.category is category
    assert errno.errorcode[code] in str(err) and "/srv/cache" not in str(err) and "nnnn" not in str(err)


def test_a_real_too_long_name_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info:
        (tmp_path / ("n" * 300)).write_bytes(b"x")
    assert os_error(info.value).category is ErrorCategory.PERMANENT


def test_verify_sha256__detects_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    verify_sha256(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    path.write_bytes(b"abd")
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        verify_sha256(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(PermanentError, match="no checksum"):
        verify_sha256(path, None)


def test_tidy__removes_file_and_empty_folders_but_never_the_root(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    path = cache_file(root, "xact", "m", "r")
    path.write_bytes(b"x")
    tidy(path, root)
    assert root.is_dir() and list(root.rglob("*")) == [root / "xact"]

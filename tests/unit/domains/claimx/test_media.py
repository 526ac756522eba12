"""Media blob paths, download plans and URL refresh (SPEC §4.6 with DECISIONS overrides)."""

from __future__ import annotations

import pytest

from core.errors import ErrorCategory, PermanentError
from core.security.presigned import inspect_presigned
from domains.claimx.handlers import handle
from domains.claimx.media import download_plans, media_blob_path, refresh_media_url
from domains.claimx.models import parse_claimx_record
from tests.unit.domains.claimx.conftest import NOW, SampleApi, expectations, sample_lines

EXPECTED = {e["line"]: e for e in expectations()}


@pytest.mark.parametrize("line", [2, 3, 4, 13])
def test_download_plans__sample_media_get_media_id_prefixed_paths(line: int, api: SampleApi) -> None:
    """DECISIONS: ``{project}/media/{media_id}_{sanitised name}`` instead of CURRENT's bare name."""
    event = parse_claimx_record(sample_lines()[line - 1], kafka_timestamp=None)
    rows = handle(event, api, now=NOW, cache=None).rows.media
    (plan,) = download_plans(rows)
    (want,) = EXPECTED[line]["downloads"]
    current = want["blob_path_current"]  # e.g. 5010001/media/kitchen_ceiling.jpg
    folder, name = current.rsplit("/", 1)
    assert plan.blob_path == f"{folder}/{want['media_id']}_{name}"
    assert plan.media_id == want["media_id"] and plan.project_id == event.project_id
    assert plan.event_id == event.event_id
    assert plan.file_type == rows[0]["file_type"]  # the media row's type as given (DECISIONS "claimx")
    if "file_type" in want:
        assert plan.file_type == want["file_type"]  # e.g. "jpg", never "JPG"
    assert plan.url == rows[0]["full_download_link"] and plan.expires_at == rows[0]["expires_at"]


def test_blob_path__appends_the_type_extension_when_missing() -> None:
    assert media_blob_path("5010001", "880009", "report", "PDF") == "5010001/media/880009_report.pdf"
    assert media_blob_path("5010001", "880009", "scan.PDF", "pdf") == "5010001/media/880009_scan.PDF"


def test_blob_path__without_a_name_uses_media_id() -> None:
    assert media_blob_path("5010001", "880009", None, "jpg") == "5010001/media/media_880009.jpg"
    assert media_blob_path("5010001", "880009", "  ", None) == "5010001/media/media_880009"


def test_blob_path__same_name_in_one_project_never_collides() -> None:
    assert media_blob_path("1", "10", "photo.jpg", "jpg") != media_blob_path("1", "11", "photo.jpg", "jpg")


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2F..%2Fsecret.jpg", "a\\b\\..\\c.jpg", "..", "/"])
def test_blob_path__hostile_names_stay_in_the_project_media_folder(name: str) -> None:
    path = media_blob_path("5010001", "880009", name, "jpg")
    project, folder, file_name = path.split("/")
    assert (project, folder) == ("5010001", "media")
    assert file_name.startswith("880009_") and ".." not in file_name.split("_", 1)[0]


def test_blob_path__hostile_ids_cannot_add_folders() -> None:
    path = media_blob_path("../x", "1/2", "a.jpg", "jpg")
    assert path.count("/") == 2 and not path.startswith("..")


def test_blob_path__file_name_is_capped_to_255_bytes_keeping_the_extension() -> None:
    path = media_blob_path("5010001", "880009", "é" * 300 + ".jpg", "jpg")
    file_name = path.rsplit("/", 1)[1]
    assert len(file_name.encode("utf-8")) <= 255
    assert file_name.startswith("880009_") and file_name.endswith(".jpg")


def test_download_plans__rows_without_link_are_skipped() -> None:
    rows = [
        {"media_id": "1", "project_id": "2", "full_download_link": None, "event_id": "e"},
        {"media_id": "3", "project_id": "2", "full_download_link": "  ", "event_id": "e"},
    ]
    assert download_plans(rows) == []


def test_refresh_media_url__returns_the_fresh_link_for_880003(api: SampleApi) -> None:
    url = refresh_media_url(api, "5010001", "880003")
    assert api.calls == ["GET /export/project/5010001/media?mediaIds=880003"]
    info = inspect_presigned(url)
    assert info.is_presigned and not info.is_expired()


def test_refresh_media_url__missing_media_is_permanent(api: SampleApi) -> None:
    with pytest.raises(PermanentError) as info:
        refresh_media_url(api, "5010002", "889999")
    assert info.value.category is ErrorCategory.PERMANENT

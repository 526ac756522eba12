"""Synthetic id scheme: every id names its project; ranges never overlap."""

from __future__ import annotations

import pytest

from simulator import synthetic as s


def test_ids__round_trip_to_their_project_and_slot() -> None:
    for index in (0, 1, 777, s.MAX_PROJECTS - 1):
        assert s.project_index(s.project_id(index)) == index
        assert s.media_owner(s.media_id(index, 7)) == (index, 7)
        assert s.assignment_owner(s.assignment_id(index, 9)) == (index, 9)


def test_ids__ranges_do_not_overlap_and_fit_int32() -> None:
    last = s.MAX_PROJECTS - 1
    assert s.project_id(last) < s.VIDEO_ID_START
    assert s.video_collaboration_id(last) < s.ASSIGNMENT_ID_START
    assert s.assignment_id(last, s.TASK_SLOTS - 1) < s.MEDIA_ID_START
    assert s.media_id(last, s.MEDIA_SLOTS - 1) < 2**31


def test_ids__outside_the_ranges_are_not_synthetic() -> None:
    assert s.project_index(5010001) is None
    assert s.media_owner(880001) is None
    assert s.assignment_owner(7700001) is None
    with pytest.raises(ValueError):
        s.media_id(0, s.MEDIA_SLOTS)


def test_media_item__link_is_a_far_future_presigned_simulator_url() -> None:
    pid, mid = s.project_id(2), s.media_id(2, 1)
    item = s.media_item(pid, mid, size_bytes=4096)
    assert item["fullDownloadLink"].startswith(f"https://{s.MEDIA_HOST}/synthetic/{pid}/{mid}/4096/")
    assert "X-Amz-Date=20991231T000000Z" in item["fullDownloadLink"]
    assert item["mediaName"].endswith("." + item["mediaType"])
    with pytest.raises(KeyError):
        s.media_item(s.project_id(3), mid, size_bytes=1)


def test_bodies__are_deterministic() -> None:
    pid = s.project_id(11)
    assert s.project_body(pid) == s.project_body(pid)
    assert s.task_body(s.assignment_id(11, 0)) == s.task_body(s.assignment_id(11, 0))

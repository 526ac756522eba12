"""Deterministic simulator files: type headers, sizes, content types, ranges, presigned expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulator import files
from simulator.files import expected_bytes, file_spec, iter_content, parse_range, presigned_expiry

XN = "xn-exportreceiver.s3.example.com"


@pytest.mark.parametrize(
    ("name", "magic", "content_type"),
    [
        ("a.pdf", b"%PDF-1.4", "application/pdf"),
        ("a.jpg", b"\xff\xd8\xff", "image/jpeg"),
        ("A.JPG", b"\xff\xd8\xff", "image/jpeg"),
        ("a.jpeg", b"\xff\xd8\xff", "image/jpeg"),
        ("a.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        ("a.xml", b"<?xml", "application/xml"),
        ("a.mp4", b"\x00\x00\x00\x18ftyp", "video/mp4"),
        ("a.esx", b"PK\x03\x04", "application/octet-stream"),
        ("a.zip", b"PK\x03\x04", "application/zip"),
        ("a.gif", b"GIF89a", "image/gif"),
        ("a.webp", b"RIFF", "image/webp"),
    ],
)
def test_file__magic_header_and_content_type_follow_the_extension(
    name: str, magic: bytes, content_type: str
) -> None:
    spec = file_spec(f"{XN}/exports/{name}")
    assert spec is not None and spec.content_type == content_type
    assert expected_bytes(f"{XN}/exports/{name}").startswith(magic)


def test_file__sample_files_are_2_kib_and_end_with_their_trailer() -> None:
    body = expected_bytes(f"{XN}/exports/A-7100451/3f9b2c1e/Inspection_Report.pdf")
    assert len(body) == 2048
    assert body.endswith(b"%%EOF\n")
    assert expected_bytes(f"{XN}/p/x.jpg").endswith(b"\xff\xd9")


def test_file__extension_comes_from_filename_query_when_the_path_has_none() -> None:
    url = f"{XN}/download/7c1e2b90-2f7d-4b8a-9d6e-5a4b3c2d1e0f?filename=fnol_statement.pdf&download=true"
    spec = file_spec(url)
    assert spec is not None and (spec.extension, spec.content_type) == ("pdf", "application/pdf")
    assert expected_bytes(url).startswith(b"%PDF-1.4")


def test_file__no_extension_is_octet_stream() -> None:
    spec = file_spec(f"{XN}/exports/A-7100458/blob-without-extension")
    assert spec is not None and spec.content_type == "application/octet-stream" and spec.extension == ""


def test_file__query_and_scheme_do_not_change_the_bytes() -> None:
    plain = expected_bytes("claimx-media.s3.example.com/projects/1/2/walkthrough.mp4")
    signed = expected_bytes("https://claimx-media.s3.example.com/projects/1/2/walkthrough.mp4?X-Amz-Date=1")
    assert plain == signed


def test_file__percent_encoded_and_decoded_paths_serve_the_same_bytes() -> None:
    assert expected_bytes(f"{XN}/e/water%20damage.png") == expected_bytes(f"{XN}/e/water damage.png")


def test_file__different_paths_give_different_bytes() -> None:
    assert expected_bytes(f"{XN}/a/photo_01.jpg") != expected_bytes(f"{XN}/a/photo_02.jpg")


def test_file__synthetic_size_comes_from_the_path() -> None:
    body = expected_bytes("files.example.com/synthetic/1-7/5000/report_1.pdf")
    assert len(body) == 5000


def test_file__dummy_source_files_path_is_served_on_any_host_at_100_kib() -> None:
    spec = file_spec("localhost/files/5010001/880001/x.jpg")
    assert spec is not None and spec.size == 100 * 1024


def test_file__unknown_host_or_bad_synthetic_path_serves_nothing() -> None:
    assert file_spec("untrusted.example.net/exports/invoice.pdf") is None
    assert file_spec("files.example.com/synthetic/x/notasize/a.pdf") is None
    with pytest.raises(KeyError):
        expected_bytes("untrusted.example.net/a.pdf")


def test_file__text_types_are_ascii_between_header_and_trailer() -> None:
    body = expected_bytes("files.example.com/synthetic/t/70000/data.xml")
    assert body.decode("ascii").endswith("-->\n</document>\n")
    assert "--" not in body.decode()[60:-20]


def test_file__chunks_are_bounded_and_rejoin_to_any_range() -> None:
    spec = file_spec("files.example.com/synthetic/z/200000/v.mp4")
    assert spec is not None
    chunks = list(iter_content(spec))
    assert max(len(c) for c in chunks) <= files.BLOCK_BYTES
    whole = b"".join(chunks)
    assert len(whole) == 200000
    assert b"".join(iter_content(spec, 65530, 131080)) == whole[65530:131080]


def test_file__tiny_files_keep_a_truncated_header_and_exact_size() -> None:
    assert expected_bytes("files.example.com/synthetic/t/3/x.pdf") == b"%PD"
    assert expected_bytes("files.example.com/synthetic/t/0/x.pdf") == b""


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=100-", "invalid"),
        ("items=0-1", None),
        (None, None),
    ],
)
def test_parse_range__single_byte_ranges(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_presigned_expiry__s3_and_claimx_service_queries() -> None:
    s3 = "X-Amz-Date=20240601T120000Z&X-Amz-Expires=3600&X-Amz-Signature=abc"
    assert presigned_expiry(s3) == datetime(2024, 6, 1, 13, tzinfo=UTC)
    service = "sign=x&systemDate=4102444800000&expires=86400000&filename=a.pdf"
    assert presigned_expiry(service) == datetime(2100, 1, 2, tzinfo=UTC)
    assert presigned_expiry("filename=a.pdf") is None
    assert presigned_expiry("X-Amz-Date=garbage&X-Amz-Expires=1") is None


def test_access_denied_xml__is_s3_shaped() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    body = files.access_denied_xml("/p/a&b.mp4", now, now).decode()
    assert "<Code>AccessDenied</Code>" in body and "a&amp;b.mp4" in body

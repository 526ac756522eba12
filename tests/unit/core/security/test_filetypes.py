"""File-type rules (SPEC §9.2, §11) and the one URL file-name rule (DECISIONS, xact line 16)."""

from __future__ import annotations

import pytest

from core.errors import PermanentError
from core.security.filetypes import (
    ALLOWED_CONTENT_TYPES,
    ALLOWED_EXTENSIONS,
    EXTENSION_MIME,
    check_content_type,
    check_extension,
    extension_from_url,
    name_from_url,
    normalise_content_type,
)

CLAIMX_SERVICE = (
    "https://www.claimxperience.com/service/cxfileservice/get/8d7f6e5d-4c3b-4a29-8f17-0e6d5c4b3a21"
    "?sign=abc&systemDate=4102444800000&expires=86400000&filename=Property_Report.pdf&download=true"
)


@pytest.mark.parametrize(
    "url, ext",
    [
        ("https://h.example.com/a/report.pdf", "pdf"),
        ("https://h.example.com/a/PHOTO_0001.JPG", "jpg"),
        ("https://h.example.com/a/archive.backup.tar.xml", "xml"),  # multiple dots -> last
        ("https://h.example.com/a/report.pdf?X-Amz-Date=1&x=y.png", "pdf"),
        ("https://h.example.com/a/report.pdf#page=2.png", "pdf"),
        ("https://h.example.com/a/water%20damage%20closeup.png", "png"),
        ("https://h.example.com/a/report%2Epdf", "pdf"),  # decoded before the dot is looked for
        ("https://h.example.com/download/7c1e2b90?filename=fnol_statement.pdf&download=true", "pdf"),
        ("https://h.example.com/dl?file=estimate.ESX", "esx"),
        ("https://h.example.com/dl?name=My+Report.PDF", "pdf"),
        ("https://h.example.com/dl?FileName=x.jpeg", "jpeg"),
        ("https://h.example.com/dl?name=a.png&filename=b.pdf", "pdf"),  # filename beats name
        ("https://h.example.com/dl?filename=dir%2Fsub%2Fc.tif", "tif"),
        ("https://h.example.com/a/photo.jpg?filename=other.pdf", "jpg"),  # path wins over query
        (CLAIMX_SERVICE, "pdf"),
    ],
)
def test_extension_from_url__cases(url: str, ext: str) -> None:
    assert extension_from_url(url) == ext


@pytest.mark.parametrize(
    "url",
    [
        "https://h.example.com/exports/A-7100458/blob-without-extension",
        "https://h.example.com/a/",
        "https://h.example.com",
        "https://h.example.com/a/file.",
        "https://h.example.com/v1.2/blob",  # a dot in an earlier segment does not count
        "https://h.example.com/dl?filename=",
        "https://h.example.com/dl?title=x.pdf",
        "",
        "https://[::1/broken.pdf",
    ],
)
def test_extension_from_url__none(url: str) -> None:
    assert extension_from_url(url) is None


@pytest.mark.parametrize(
    "url, name",
    [
        ("https://h.example.com/a/Inspection_Report.pdf?X-Amz-Date=1", "Inspection_Report.pdf"),
        ("https://h.example.com/a/water%20damage%20closeup.png", "water%20damage%20closeup.png"),
        (
            "https://h.example.com/download/7c1e2b90?filename=fnol_statement.pdf&download=true",
            "fnol_statement.pdf",
        ),
        ("https://h.example.com/dl?name=My+Report.PDF", "My%20Report.PDF"),
        ("https://h.example.com/dl?filename=a%20b.pdf", "a%20b.pdf"),
        ("https://h.example.com/a/photo.jpg?filename=other.pdf", "photo.jpg"),
        ("https://h.example.com/exports/blob-without-extension", "blob-without-extension"),
        ("https://h.example.com/a/", None),
        ("https://h.example.com", None),
        ("", None),
        (CLAIMX_SERVICE, "Property_Report.pdf"),
    ],
)
def test_name_from_url__same_rule_as_extension(url: str, name: str | None) -> None:
    assert name_from_url(url) == name


def test_name_and_extension_agree_for_query_named_file() -> None:
    url = "https://h.example.com/download/7c1e2b90-2f7d?filename=fnol_statement.pdf"
    name = name_from_url(url)
    assert name is not None and name.rsplit(".", 1)[1] == extension_from_url(url)


@pytest.mark.parametrize("ext", sorted(ALLOWED_EXTENSIONS) + ["PDF", "Jpg", ".pdf"])
def test_check_extension__allowed(ext: str) -> None:
    check_extension(ext)


@pytest.mark.parametrize("ext", ["exe", "sh", "bat", "zip", "ZIP", "js", "svg"])
def test_check_extension__disallowed_is_permanent(ext: str) -> None:
    with pytest.raises(PermanentError) as info:
        check_extension(ext)
    assert str(info.value) == f"File extension '{ext.lower()}' not allowed"


@pytest.mark.parametrize("ext", [None, "", ".", " "])
def test_check_extension__missing_is_permanent(ext: str | None) -> None:
    with pytest.raises(PermanentError) as info:
        check_extension(ext)
    assert str(info.value) == "No file extension found"


def test_allowed_lists_match_spec() -> None:
    assert len(ALLOWED_EXTENSIONS) == 22
    assert "video/mp4" in ALLOWED_CONTENT_TYPES and "text/html" not in ALLOWED_CONTENT_TYPES
    assert all(mimes <= ALLOWED_CONTENT_TYPES for mimes in EXTENSION_MIME.values())
    assert set(EXTENSION_MIME) <= ALLOWED_EXTENSIONS


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("application/pdf", "application/pdf"),
        ("Image/JPEG; charset=binary", "image/jpeg"),
        ("  text/xml ;q=1", "text/xml"),
        ("", None),
        (None, None),
        ("; x=y", None),
    ],
)
def test_normalise_content_type(raw: str | None, normal: str | None) -> None:
    assert normalise_content_type(raw) == normal


@pytest.mark.parametrize(
    "ext, content_type",
    [
        ("pdf", "application/pdf"),
        ("PDF", "Application/PDF; qs=0.9"),
        ("xml", "text/xml"),
        ("xml", "application/xml"),
        ("jpeg", "image/jpeg"),
        ("tif", "image/tiff"),
        ("mov", "video/quicktime"),
        ("esx", "application/xml"),  # no mapping: any allowed type
        ("docx", "application/pdf"),
        ("pdf", None),  # no Content-Type returned: nothing to check
        ("pdf", ""),
    ],
)
def test_check_content_type__accepted(ext: str, content_type: str | None) -> None:
    check_content_type(ext, content_type)


@pytest.mark.parametrize(
    "ext, content_type, detail",
    [
        ("pdf", "image/jpeg", "'image/jpeg' does not match extension 'pdf'"),
        ("jpg", "image/png", "'image/png' does not match extension 'jpg'"),
        ("html", "text/html", "'text/html' is not an allowed type"),
        ("pdf", "application/zip", "'application/zip' is not an allowed type"),
        ("esx", "application/octet-stream", "'application/octet-stream' is not an allowed type"),
    ],
)
def test_check_content_type__rejected_is_permanent(ext: str, content_type: str, detail: str) -> None:
    with pytest.raises(PermanentError) as info:
        check_content_type(ext, content_type)
    assert str(info.value) == f"Content-Type validation failed: {detail}"

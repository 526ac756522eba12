"""File-name sanitising and capping (SPEC §9.3, DECISIONS "Security and robustness")."""

from __future__ import annotations

import pytest

from core.security.filenames import (
    add_stem_suffix,
    cap_filename,
    sanitize_component,
    sanitize_filename,
    split_ext,
)

NASTY = [
    "",
    ".",
    "..",
    "...",
    " . ",
    "/",
    "\\",
    "../",
    "..\\",
    "%2e%2e",
    "%2E%2E%2F",
    "..%2F..%2Fetc%2Fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "..\\..\\evil.exe",
    "/etc/passwd",
    "a/../../b.pdf",
    "%252e%252e%252f",
    "C:\\Users\\x\\file.pdf",
    "\x00",
    "con:stream",
    "\ufffd\ufffd",
    "x" * 600,
    "é" * 300 + ".pdf",
    "%2F",
    "%5C",
    ". .%2F. .",
    "file.pdf%00.jpg",
]


def test_sanitize__plain_name_is_unchanged():
    assert sanitize_filename("Inspection_Report.pdf") == "Inspection_Report.pdf"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("exports/A-1/photo.jpg", "photo.jpg"),
        ("..\\..\\evil.exe", "evil.exe"),
        ("..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("..%5C..%5Cwindows%5Cwin.ini", "win.ini"),
        ("%2e%2e", "attachment"),
        ("%2e%2e%2f", "attachment"),
        ("a%2F..%2F..%2Fb.pdf", "b.pdf"),
    ],
)
def test_sanitize__separators_plain_or_encoded_never_survive(raw, clean):
    assert sanitize_filename(raw) == clean


def test_sanitize__percent_encoding_is_decoded_once():
    assert sanitize_filename("water%20damage%20closeup.png") == "water damage closeup.png"
    assert sanitize_filename("a%2520b.pdf") == "a%20b.pdf"


def test_sanitize__reserved_and_control_characters_become_underscores():
    assert sanitize_filename('a<b>c:d"e|f?g*h.pdf') == "a_b_c_d_e_f_g_h.pdf"
    assert sanitize_filename("a\x00b\x1fc\x7fd.pdf") == "a_b_c_d.pdf"
    assert sanitize_filename("bad\ufffdbyte.pdf") == "bad_byte.pdf"
    assert sanitize_filename("file.pdf%00.jpg") == "file.pdf_.jpg"


def test_sanitize__unicode_is_nfc_normalised():
    assert sanitize_filename("Cafe\u0301.pdf") == "Caf\u00e9.pdf"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  .hidden.pdf. ", "hidden.pdf"),
        ("...", "attachment"),
        ("", "attachment"),
        (".", "attachment"),
        ("..", "attachment"),
        (" ", "attachment"),
    ],
)
def test_sanitize__leading_trailing_dots_and_spaces_stripped_empty_becomes_attachment(raw, clean):
    assert sanitize_filename(raw) == clean


@pytest.mark.parametrize("raw", NASTY)
def test_sanitize__result_is_always_one_safe_component(raw):
    clean = sanitize_filename(raw)
    assert clean and clean not in (".", "..")
    assert "/" not in clean and "\\" not in clean and "\x00" not in clean
    assert clean == clean.strip(". ")
    assert len(clean.encode("utf-8")) <= 255


@pytest.mark.parametrize("raw", NASTY)
def test_sanitize_component__result_is_always_one_safe_component(raw):
    clean = sanitize_component(raw)
    assert clean and clean not in (".", "..")
    assert "/" not in clean and "\\" not in clean
    assert len(clean.encode("utf-8")) <= 255


def test_sanitize_component__keeps_information_instead_of_taking_basename():
    assert sanitize_component("../x") == "_x"
    assert sanitize_component("A/1") == "A_1"
    assert sanitize_component("A%2F1") == "A%2F1"  # not decoded: literal characters are harmless
    assert sanitize_component("") == "unknown"
    assert sanitize_component("..") == "unknown"


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("photo.jpg", ("photo", "jpg")),
        ("file", ("file", "")),
        ("archive.tar.gz", ("archive.tar", "gz")),
        (".env", (".env", "")),
        ("trailing.", ("trailing", "")),
    ],
)
def test_split_ext(name, parts):
    assert split_ext(name) == parts


def test_cap__short_name_is_unchanged():
    assert cap_filename("photo.jpg") == "photo.jpg"
    name = "a" * 251 + ".pdf"
    assert cap_filename(name) == name


def test_cap__ascii_stem_is_cut_extension_kept():
    capped = cap_filename("a" * 300 + ".pdf")
    assert capped == "a" * 251 + ".pdf"


@pytest.mark.parametrize(
    ("char", "expected_bytes"),
    [
        ("é", 254),  # 2-byte: 125 chars fit in the 251-byte stem budget
        ("水", 253),  # 3-byte: 83 chars
        ("📷", 253),  # 4-byte, ".jpeg" extension: 62 chars = 248 bytes in the 250-byte budget
    ],
)
def test_cap__multibyte_characters_are_never_split(char, expected_bytes):
    ext = "jpeg" if char == "📷" else "pdf"
    capped = cap_filename(char * 300 + "." + ext)
    encoded = capped.encode("utf-8")
    assert len(encoded) <= 255
    assert len(encoded) == expected_bytes
    assert capped.endswith("." + ext)
    assert set(capped[: -len(ext) - 1]) == {char}


def test_cap__extension_longer_than_ten_chars_counts_as_stem():
    capped = cap_filename("a" * 300 + ".abcdefghijk")
    assert capped == "a" * 255


def test_cap__respects_custom_limit():
    assert cap_filename("abcdefgh.pdf", max_bytes=8) == "abcd.pdf"
    assert cap_filename("abcdefgh.pdf", max_bytes=3) == "abc"


def test_add_stem_suffix__suffix_survives_capping():
    assert add_stem_suffix("A-1_photo.jpg", "_2") == "A-1_photo_2.jpg"
    assert add_stem_suffix("A-1_blob", "_3") == "A-1_blob_3"
    long_name = cap_filename("水" * 200 + ".jpg")
    suffixed = add_stem_suffix(long_name, "_2")
    assert suffixed.endswith("_2.jpg")
    assert len(suffixed.encode("utf-8")) <= 255

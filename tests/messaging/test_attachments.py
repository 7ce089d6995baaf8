"""Attachment checks: type by content, clean names, size and count limits, the DOCX zip bomb."""

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.downloads import content_disposition
from portal.errors import RuleError
from portal.messaging import sending
from portal.messaging.attachments import (
    NAME_MAX,
    Refused,
    check_file,
    clean_name,
    sniff,
)
from tests.messaging.conftest import PDF, PNG

TEN_MB = 10 * 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64)
HEIC = (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
HEIF_GENERIC = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + bytes(64)
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(256)


def docx(extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal Word document (a zip with the parts Word needs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("word/document.xml", "<w:document>Hello</w:document>")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def check(name, data, max_bytes=TEN_MB):
    return check_file(name, data, max_bytes=max_bytes)


@pytest.mark.parametrize(("name", "data", "kind"), [
    ("scan.pdf", PDF, "pdf"), ("photo.png", PNG, "png"), ("photo.jpg", JPEG, "jpeg"),
    ("IMG_0001.HEIC", HEIC, "heic"), ("photo.heif", HEIF_GENERIC, "heic"),
    ("notes.txt", "Grocery list: ☕ and 🍋\n".encode(), "txt"),
    ("form.docx", docx(), "docx"),
])
def test_allowed_kinds_are_recognised_by_content(name, data, kind):
    checked = check(name, data)
    assert checked.kind.key == kind
    assert checked.name == name


@pytest.mark.parametrize(("name", "data"), [
    ("invoice.pdf", EXE), ("photo.png", EXE), ("setup.exe", EXE), ("movie.avif", AVIF),
    ("archive.docx", b"PK\x03\x04" + bytes(100)),  # a zip that is not a Word document
    ("page.html", b"<html>\x00<script>alert(1)</script>"), ("binary.txt", bytes(range(256))),
])
def test_other_content_is_refused_whatever_its_name(name, data):
    with pytest.raises(Refused, match=r"not a type we accept|damaged"):
        check(name, data)


def test_a_renamed_exe_is_refused():
    with pytest.raises(Refused) as problem:
        check("holiday-photo.jpg", EXE)
    assert "not a type we accept" in problem.value.reason


def test_an_empty_file_is_refused():
    with pytest.raises(Refused, match="it is empty"):
        check("empty.pdf", b"")


def test_ten_megabytes_is_fine_and_one_byte_more_is_not():
    exactly = PDF + bytes(TEN_MB - len(PDF))
    assert check("big.pdf", exactly).size == TEN_MB
    with pytest.raises(Refused, match="larger than 10 MB"):
        check("big.pdf", exactly + b"\0")


def test_a_zip_bomb_docx_is_refused():
    bomb = docx({"word/media/filler.bin": bytes(60 * 1024 * 1024)})
    assert len(bomb) < 200 * 1024  # sixty megabytes of zeros squeeze into very little
    with pytest.raises(Refused, match="zip bomb"):
        check("report.docx", bomb)


def test_a_docx_whose_parts_claim_huge_sizes_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        for number in range(2001):
            archive.writestr(f"word/part{number}.xml", "")
    with pytest.raises(Refused, match="more parts"):
        check("many.docx", buffer.getvalue())


def test_a_docx_with_macros_is_refused():
    with pytest.raises(Refused, match="macros"):
        check("invoice.docx", docx({"word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}))


@pytest.mark.parametrize(("raw", "expected"), [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Users\\alex\\Desktop\\scan.pdf", "scan.pdf"),
    ("/tmp/evil\x00name.pdf", "evilname.pdf"),
    ("bad\r\nContent-Type: text/html.pdf", "html.pdf"),
    ("bad\r\nname\t.pdf", "badname.pdf"),
    ("\x1b[31mred.pdf", "[31mred.pdf"),
    ("invoice\u202efdp.exe.pdf", "invoicefdp.exe.pdf"),  # right-to-left override removed
    ("  ..hidden.pdf  ", "hidden.pdf"),
    ("<script>.pdf", "_script_.pdf"),
    ("", "attachment"),
    ("\x00\x01", "attachment"),
    ("Zo\u00eb\u2019s notes.pdf", "Zo\u00eb\u2019s notes.pdf"),
])
def test_names_are_cleaned(raw, expected):
    assert clean_name(raw) == expected


def test_the_name_gets_the_extension_the_content_proved():
    assert check("holiday.exe", PNG).name == "holiday.exe.png"
    assert check("scan", PDF).name == "scan.pdf"
    assert check("PHOTO.JPEG", JPEG).name == "PHOTO.JPEG"


def test_long_names_keep_their_extension():
    name = clean_name("a" * 500 + ".pdf")
    assert len(name) == NAME_MAX and name.endswith(".pdf")


@given(st.text(max_size=300))
def test_a_cleaned_name_is_always_safe(raw):
    name = clean_name(raw)
    assert name and len(name) <= NAME_MAX
    assert not any(ch in name for ch in "/\\\x00\r\n\t\u202e")
    assert not name.startswith((".", " "))
    header = content_disposition(name)
    assert "\r" not in header and "\n" not in header
    assert header.count('"') == 2


def test_content_disposition_is_rfc6266():
    assert content_disposition("Zo\u00eb\u2019s scan.pdf") == (
        "attachment; filename=\"Zoes scan.pdf\"; "
        "filename*=UTF-8''Zo%C3%AB%E2%80%99s%20scan.pdf")
    assert content_disposition("日本.pdf").startswith('attachment; filename="attachment.pdf"')


def test_sniff_says_nothing_for_unknown_bytes():
    assert sniff(b"\x00\x01\x02") is None


def test_more_than_five_files_are_refused(app):
    with pytest.raises(RuleError, match="up to 5 files"):
        sending.check_files([(f"{n}.pdf", PDF) for n in range(6)])


def test_every_refused_file_is_named_with_its_reason(app):
    with pytest.raises(sending.FilesRefused) as problem:
        sending.check_files([("ok.pdf", PDF), ("../x.exe", EXE), ("none.txt", b"")])
    assert problem.value.refused == [
        ("x.exe", "it is not a type we accept (PDF, PNG, JPEG, HEIC, plain text (TXT) or "
                  "Word (DOCX))"),
        ("none.txt", "it is empty")]


def test_oversized_upload_through_the_form_is_refused_and_the_text_kept(app, db, people,
                                                                         login):
    from werkzeug.datastructures import FileStorage

    from tests.messaging.conftest import csrf_token, post_multipart

    client = login(people.client_a)
    data = {"csrf_token": csrf_token(client, "/messages/new"),
            "recipient": str(people.therapist_x.id), "subject": "Scan", "body": "See attached",
            "attachments": FileStorage(io.BytesIO(PDF + bytes(TEN_MB)), "huge.pdf",
                                       content_type="application/pdf")}
    response = post_multipart(client, "/messages/new", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "“huge.pdf” was not attached: it is larger than 10 MB." in html
    assert "See attached</textarea>" in html

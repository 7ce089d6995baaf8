"""Attachment checks: the file's type by its content, a clean name, and the DOCX zip-bomb test.

The browser's claimed type and the file's extension are ignored: a file is accepted only when
its first bytes say it is one of the allowed kinds, and it is served back with that kind's
fixed content type. Names are cleaned of paths, control and direction characters, and given
the extension of the kind the content proved.
"""

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from portal.text import size_text

# DOCX limits: the real (decompressed) size is measured, not the sizes the zip claims.
DOCX_MAX_MEMBERS = 2000
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 100
NAME_MAX = 120
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    content_type: str
    extensions: tuple[str, ...]


KINDS: dict[str, Kind] = {
    "pdf": Kind("pdf", "PDF", "application/pdf", (".pdf",)),
    "png": Kind("png", "PNG image", "image/png", (".png",)),
    "jpeg": Kind("jpeg", "JPEG image", "image/jpeg", (".jpg", ".jpeg")),
    "heic": Kind("heic", "HEIC photo", "image/heic", (".heic", ".heif")),
    "txt": Kind("txt", "text file", "text/plain; charset=utf-8", (".txt",)),
    "docx": Kind("docx", "Word document",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                 (".docx",)),
}
ALLOWED_TEXT = "PDF, PNG, JPEG, HEIC, plain text (TXT) or Word (DOCX)"
HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})


class Refused(Exception):
    """A file that will not be attached; `reason` is a plain sentence for the person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckedFile:
    name: str
    kind: Kind
    data: bytes = b""

    @property
    def size(self) -> int:
        return len(self.data)


# --- names -------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[<>:"|?*;\\/]')
_SPACES = re.compile(r"\s+")


def clean_name(raw: str | None) -> str:
    """Return a safe display and download name: no path, no control or direction characters."""
    name = unicodedata.normalize("NFC", raw or "")
    # Only the last path segment, whichever separator the browser used.
    name = re.split(r"[/\\]", name)[-1]
    # Control (Cc), format (Cf: right-to-left override, zero-width), unassigned and private.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cn",
                                                                           "Co", "Cs"))
    name = _UNSAFE.sub("_", name)
    name = _SPACES.sub(" ", name).strip().lstrip(".").strip()
    if len(name) > NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[:NAME_MAX - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:NAME_MAX].rstrip()
    return name or "attachment"


def name_for_kind(name: str, kind: Kind) -> str:
    """Make the name end with an extension of the kind the content proved."""
    if name.lower().endswith(kind.extensions):
        return name
    return name + kind.extensions[0]


# --- content -----------------------------------------------------------------------------

def sniff(data: bytes) -> Kind | None:
    """Return the allowed kind these bytes are, or None."""
    if data.startswith(b"%PDF-"):
        return KINDS["pdf"]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return KINDS["png"]
    if data.startswith(b"\xff\xd8\xff"):
        return KINDS["jpeg"]
    if _is_heic(data):
        return KINDS["heic"]
    if data.startswith(b"PK\x03\x04"):
        return KINDS["docx"] if _looks_like_docx(data) else None
    if _is_text(data):
        return KINDS["txt"]
    return None


def _is_heic(data: bytes) -> bool:
    if len(data) < 16 or data[4:8] != b"ftyp":
        return False
    box_size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    if major in HEIC_BRANDS:
        return True
    if major in HEIF_GENERIC_BRANDS and 16 <= box_size <= min(len(data), 4096):
        compatible = {data[i:i + 4] for i in range(16, box_size - 3, 4)}
        return bool(compatible & HEIC_BRANDS)
    return False


def _looks_like_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return False
    return "[Content_Types].xml" in names and "word/document.xml" in names


_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROL.search(text)


def check_docx(data: bytes) -> None:
    """Refuse a DOCX that is a zip bomb, encrypted, damaged or carries macros."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > DOCX_MAX_MEMBERS:
                raise Refused("it holds more parts than a Word document should")
            declared = sum(m.file_size for m in members)
            if declared > DOCX_MAX_UNCOMPRESSED:
                raise Refused("it expands to far more than its size (it may be a zip bomb)")
            names = {m.filename for m in members}
            if any(name.lower().endswith("vbaproject.bin") for name in names):
                raise Refused("it contains macros; please save it as a plain .docx")
            # Decompress for real with a hard cap: sizes in the headers can lie.
            limit = min(DOCX_MAX_UNCOMPRESSED, max(len(data), 1) * DOCX_MAX_RATIO)
            total = 0
            for member in members:
                if member.flag_bits & 0x1:
                    raise Refused("it is password-protected")
                with archive.open(member) as stream:
                    while chunk := stream.read(CHUNK):
                        total += len(chunk)
                        if total > limit:
                            raise Refused("it expands to far more than its size "
                                          "(it may be a zip bomb)")
    except Refused:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError,
            OSError, EOFError, RuntimeError):
        raise Refused("it appears to be damaged") from None


def read_upload(stream, max_bytes: int) -> bytes:
    """Read at most max_bytes + 1 bytes, so an oversized file is known without reading it all."""
    data = stream.read(max_bytes + 1)
    return bytes(data or b"")


def check_file(raw_name: str | None, data: bytes, *, max_bytes: int) -> CheckedFile:
    """Return the checked file, or raise Refused with the reason."""
    if not data:
        raise Refused("it is empty")
    if len(data) > max_bytes:
        raise Refused(f"it is larger than {size_text(max_bytes)}")
    kind = sniff(data)
    if kind is None:
        raise Refused(f"it is not a type we accept ({ALLOWED_TEXT})")
    if kind.key == "docx":
        check_docx(data)
    return CheckedFile(name_for_kind(clean_name(raw_name), kind), kind, data)

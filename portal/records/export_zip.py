"""A ZIP written as a stream: entries go out in chunks as they are written, never held whole.

`zipfile` writes to any object with `write()`; one without `tell()` makes it use data
descriptors (sizes and CRC after each entry), so nothing needs seeking back. `StreamingZip`
collects what was written since the last `chunks()` call and hands it on, so a generator can
yield the archive piece by piece while memory stays at one chunk, one open entry, and the
list of names with their hashes.

Names are made safe here, in one place: whatever a conversation's subject or an
attachment's name was, an entry cannot climb out of its folder (no `..`, no absolute path, no
backslash, no control character) and two entries never share a name.
"""

import hashlib
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

CHUNK = 64 * 1024
COMPONENT_MAX = 80
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_component(raw: str | None, *, fallback: str = "file") -> str:
    """One path component a ZIP reader will put inside its folder: no separators, no `..`,
    no leading dot or space, no control characters, at most COMPONENT_MAX characters (the
    extension kept)."""
    text = unicodedata.normalize("NFC", raw or "")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text).strip(" ._")
    if not text:
        return fallback
    if len(text) > COMPONENT_MAX:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 8:
            text = stem[:COMPONENT_MAX - len(ext) - 1].rstrip(" ._") + "." + ext
        else:
            text = text[:COMPONENT_MAX].rstrip(" ._")
    return text or fallback


def is_safe_name(name: str) -> bool:
    """Say whether an entry name stays inside the archive's top folder (what the tests and a
    careful reader check)."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/")[0]:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


@dataclass
class Entry:
    """What the manifest says about one file: its name, size and SHA-256."""

    name: str
    size: int
    sha256: str


class _Sink:
    """The file object zipfile writes to: a buffer emptied by every `take()`; no `tell()`,
    so zipfile streams (data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.written = 0

    def write(self, data) -> int:
        data = bytes(data)
        self._parts.append(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class EntryWriter:
    """An open entry: write text or bytes to it, then `chunks()` hands on what is ready."""

    def __init__(self, archive: "StreamingZip", handle, name: str) -> None:
        self._archive = archive
        self._handle = handle
        self._hash = hashlib.sha256()
        self._size = 0
        self.name = name

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._hash.update(data)
        self._size += len(data)
        self._handle.write(data)

    def close(self) -> Entry:
        self._handle.close()
        entry = Entry(self.name, self._size, self._hash.hexdigest())
        self._archive.entries.append(entry)
        return entry


class StreamingZip:
    """Write entries one at a time; `chunks()` yields the bytes written since it last ran."""

    def __init__(self, top: str) -> None:
        self.top = safe_component(top, fallback="record")
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, mode="w", compression=zipfile.ZIP_DEFLATED,
                                    compresslevel=6)
        self._names: set[str] = set()
        self.entries: list[Entry] = []

    def unique_name(self, folder: str, filename: str) -> str:
        """`top/folder/filename`, made safe and unique (`name (2).ext` on a clash)."""
        parts = [self.top, *(safe_component(p, fallback="folder")
                             for p in folder.split("/") if p)]
        base = safe_component(filename)
        stem, dot, ext = base.rpartition(".")
        if not dot or not stem:
            stem, ext = base, ""
        candidate, n = base, 1
        while "/".join([*parts, candidate]).casefold() in self._names:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        name = "/".join([*parts, candidate])
        self._names.add(name.casefold())
        return name

    def open(self, name: str, *, when: datetime, compress: bool = True) -> EntryWriter:
        if not is_safe_name(name):  # unique_name makes them; this only guards a mistake
            raise ValueError("unsafe entry name")
        info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return EntryWriter(self, self._zip.open(info, mode="w", force_zip64=True), name)

    def add(self, name: str, data: bytes | str, *, when: datetime,
            compress: bool = True) -> Iterator[bytes]:
        """Write a whole entry from memory (a PDF, an attachment), in chunks."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        entry = self.open(name, when=when, compress=compress)
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            entry.write(bytes(view[start:start + CHUNK]))
            yield from self.chunks()
        entry.close()
        yield from self.chunks()

    def chunks(self) -> Iterator[bytes]:
        data = self._sink.take()
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        """Write the central directory and yield the last bytes."""
        self._zip.close()
        yield from self.chunks()

    @property
    def bytes_out(self) -> int:
        return self._sink.written

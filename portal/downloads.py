"""Every file the portal hands out goes through one response: never sniffed, never cached."""

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

from flask import Response

from portal.security import CSP


def content_disposition(name: str) -> str:
    """An RFC 6266 header: an ASCII fallback and the UTF-8 name (filename*)."""
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r'[^A-Za-z0-9 ._()\-]', "_", fallback).strip()
    if not fallback or fallback.startswith("."):
        fallback = "attachment" + fallback
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def download(data: bytes | Iterable[bytes], *, filename: str, content_type: str,
             sandbox: bool = False) -> Response:
    """Answer with a file to save: attachment disposition, nosniff, no-store.

    `data` may be an iterable of chunks (a streamed ZIP): the body is sent as it comes.

    `sandbox` adds the CSP sandbox for content people uploaded, so a file opened anyway
    cannot run script in the portal's origin.
    """
    response = Response(data, status=200, content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition(filename)
    if sandbox:
        response.headers["Content-Security-Policy"] = f"{CSP}; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response

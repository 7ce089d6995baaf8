"""Only signed-in people may send a body larger than the form limit, and only to a page that
takes files; the limit is checked before the body is read (issue 17).

Before this, a signed-out request could make the server read a 59 MB multipart body before
the CSRF check refused it. The tests count the bytes the app reads from the body, through the
test client and through a real socket to a threaded Werkzeug server.
"""

import io
import socket
import threading
import time
import uuid

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, encode_multipart
from werkzeug.wrappers import Request

from portal import pages
from tests.messaging.conftest import PDF, assign
from tests.support.auth import signed_in
from tests.support.people import csrf_from, make_admin, make_client, make_therapist

MB = 1024 * 1024
HUGE = 59 * MB  # under MAX_CONTENT_LENGTH (60 MB), far over the form limit (500 KB)
BOUNDARY = "coeo-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(autouse=True)
def _isolated(isolated_requests):
    """Each request in its own app context, as in production (tests/conftest.py)."""


class CountingStream(io.RawIOBase):
    """A request body that counts what the app reads: `size` bytes of one file part."""

    def __init__(self, size: int) -> None:
        # A file part: Werkzeug spools it to disk, so only the request limit stops it.
        self.head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachments\"; "
                     "filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").encode()
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.size - self.read_bytes
        count = min(len(buffer), left)
        if count <= 0:
            return 0
        start = self.read_bytes
        chunk = bytearray(count)
        head = self.head[start:start + count]
        chunk[:len(head)] = head
        buffer[:count] = chunk
        self.read_bytes += count
        return count


def _people():
    client, therapist = make_client(), make_therapist()
    assign(client, therapist)
    return client, therapist


def _post_stream(client, path: str, size: int, *, declared: int | None, chunked: bool = False):
    """POST `size` bytes of a multipart body, announcing `declared` as its Content-Length
    (None: no Content-Length, as a chunked body arrives)."""
    stream = CountingStream(size)
    environ = EnvironBuilder(path=path, method="POST", content_type=MULTIPART).get_environ()
    environ["wsgi.input"] = stream
    environ.pop("CONTENT_LENGTH", None)
    if declared is not None:
        environ["CONTENT_LENGTH"] = str(declared)
    if chunked:
        environ["wsgi.input_terminated"] = True
    response = client.open(Request(environ))
    return response, stream


def test_upload_pages_are_the_only_ones_marked(app):
    assert pages.endpoints_marked(app, pages.UPLOADS) == {"messaging.compose",
                                                          "messaging.reply"}


@pytest.mark.parametrize("path", ["/messages/new", "/sign-in", "/messages/{thread}/reply"])
def test_a_signed_out_upload_is_refused_before_its_body_is_read(app, client, path):
    response, stream = _post_stream(client, path.format(thread=uuid.uuid4()), HUGE, declared=HUGE)
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "That was too large to send" in html and "The limit is 500 KB" in html
    assert stream.read_bytes == 0


def test_a_signed_out_chunked_upload_stops_at_the_form_limit(app, client):
    # No Content-Length: the body is read through a stream that ends at the form limit.
    response, stream = _post_stream(client, "/messages/new", 5 * MB, declared=None,
                                    chunked=True)
    assert response.status_code == 413
    assert "That was too large to send" in response.get_data(as_text=True)
    assert stream.read_bytes <= app.config["MAX_FORM_MEMORY_SIZE"] + 64 * 1024


def test_an_expired_session_counts_as_signed_out(app):
    from sqlalchemy import delete

    from portal.accounts.models import UserSession
    from portal.extensions import db

    person, _ = _people()
    browser = signed_in(app, person)
    db.session.execute(delete(UserSession))
    db.session.commit()
    response, stream = _post_stream(browser, "/messages/new", HUGE, declared=HUGE)
    assert response.status_code == 413
    assert stream.read_bytes == 0


def test_a_signed_in_person_posting_a_big_body_to_a_page_without_files_is_refused(app):
    person, _ = _people()
    browser = signed_in(app, person)
    response, stream = _post_stream(browser, "/account/profile", 2 * MB, declared=2 * MB)
    assert response.status_code == 413
    assert "The limit is 500 KB" in response.get_data(as_text=True)
    assert stream.read_bytes == 0


def test_someone_the_upload_page_turns_away_is_held_to_the_form_limit(app):
    """An administrator is signed in, but compose answers them 404: their 59 MB is refused
    before a byte is read, like a signed-out body."""
    admin = make_admin()
    browser = signed_in(app, admin)
    response, stream = _post_stream(browser, "/messages/new", HUGE, declared=HUGE)
    assert response.status_code == 413
    assert "The limit is 500 KB" in response.get_data(as_text=True)
    assert stream.read_bytes == 0


def test_a_url_encoded_body_to_an_upload_page_keeps_the_form_limit(app):
    person, _ = _people()
    browser = signed_in(app, person)
    response = browser.post("/messages/new", data=b"a=" + b"x" * MB,
                            content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413


def test_a_signed_in_body_beyond_the_whole_limit_is_refused_unread(app):
    person, _ = _people()
    browser = signed_in(app, person)
    declared = app.config["MAX_CONTENT_LENGTH"] + 1
    response, stream = _post_stream(browser, "/messages/new", declared, declared=declared)
    assert response.status_code == 413
    assert "The limit is 60 MB" in response.get_data(as_text=True)
    assert stream.read_bytes == 0


def test_a_signed_in_person_still_sends_five_files_of_ten_megabytes(app):
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.messaging.models import Attachment

    person, therapist = _people()
    browser = signed_in(app, person)
    token = csrf_from(browser.get("/messages/new").get_data(as_text=True))
    almost_ten = 10 * MB - 1024
    files = [FileStorage(io.BytesIO(PDF + bytes(almost_ten - len(PDF))), f"scan{i}.pdf",
                         content_type="application/pdf") for i in range(5)]
    boundary, body = encode_multipart({"csrf_token": token, "recipient": str(therapist.id),
                                       "subject": "Scans", "body": "Five of them",
                                       "attachments": files})
    assert len(body) > 5 * almost_ten
    response = browser.post("/messages/new", data=body,
                            content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 5


# --- a real socket -------------------------------------------------------------------------

@pytest.fixture
def server(app):
    """The app on 127.0.0.1 in a background thread; yields (host, port)."""
    served = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", served.server_port
    served.shutdown()
    thread.join(timeout=5)


def _send_headers_and_a_little(address, path: str, headers: dict[str, str], body: bytes
                               ) -> tuple[bytes, float]:
    """Send a request's headers and the first bytes of its body; return what comes back
    (the status line and headers at least) and how long it took."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}",
             *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    started = time.monotonic()
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode() + body)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return received, time.monotonic() - started


def test_a_live_server_answers_413_without_waiting_for_the_body(server):
    # 59 MB announced, 4 KB sent: a server that read the body would wait for the rest.
    received, took = _send_headers_and_a_little(
        server, "/messages/new", {"Content-Type": MULTIPART, "Content-Length": str(HUGE)},
        CountingStream(4096).head + b"x" * 4000)
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert took < 5


def test_a_live_server_stops_a_chunked_body_at_the_form_limit(server):
    chunk = b"x" * 64 * 1024
    body = CountingStream(0).head
    body = f"{len(body):x}\r\n".encode() + body + b"\r\n"
    body += b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(9))
    received, took = _send_headers_and_a_little(
        server, "/messages/new", {"Content-Type": MULTIPART, "Transfer-Encoding": "chunked"},
        body)  # 576 KB sent of a body that never ends
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert took < 5


def test_a_live_server_reads_a_signed_in_upload(app, server):
    person, _ = _people()
    browser = signed_in(app, person)
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = browser.get_cookie(name)
    assert cookie is not None
    # The same 59 MB announcement from someone signed in is read, not refused: with only
    # 4 KB sent the server waits for the rest (the socket times out, no 413 came).
    lines = ["POST /messages/new HTTP/1.1", f"Host: {server[0]}:{server[1]}",
             f"Content-Type: {MULTIPART}", f"Content-Length: {HUGE}",
             f"Cookie: {name}={cookie.value}", "", ""]
    with socket.create_connection(server, timeout=1.5) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"x" * 4096)
        with pytest.raises(TimeoutError):
            sock.recv(65536)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 4], ids=["sync worker", "threaded worker"])
def test_gunicorn_answers_413_at_once_and_keeps_serving(app, tmp_path, threads):
    from tests.ops.support import Browser, Gunicorn

    server = Gunicorn({"ENV_NAME": "testing", "INSTANCE_PATH": str(tmp_path),
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]},
                      workers=1, threads=threads, workdir=tmp_path / "gunicorn")
    try:
        for _ in range(3):  # the one worker is never left reading the 59 MB
            received, took = _send_headers_and_a_little(
                ("127.0.0.1", server.port), "/messages/new",
                {"Content-Type": MULTIPART, "Content-Length": str(HUGE)},
                CountingStream(4096).head + b"x" * 4000)
            assert received.startswith(b"HTTP/1.1 413"), received[:200]
            assert took < 5
        status, _, _ = Browser(server.base).request("GET", "/healthz", timeout=5)
        assert status == 200
    finally:
        server.stop()

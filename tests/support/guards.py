"""A guard that fails a test when a request it made answered with a server error (5xx)."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import Flask, Response, request, request_finished

# /readyz answers 503 by design when the instance is not ready; in tests the tables come from
# create_all, not migrations, so it always does. That 503 is a report, not a failure.
READINESS = ("ops.readyz", 503)


@contextmanager
def server_errors_refused(app: Flask, allowed: Iterable[int] = ()) -> Iterator[list[str]]:
    """Record every 5xx `app` answers inside the block, then fail if there was one.

    `allowed` lists statuses a test causes on purpose (e.g. 503 for a database outage). Yields
    the list of failures seen so far ("METHOD /path?query -> status").
    """
    allowed = frozenset(allowed)
    failures: list[str] = []

    def seen(sender: Flask, response: Response, **extra) -> None:
        status = response.status_code
        if status < 500 or status in allowed or (request.endpoint, status) == READINESS:
            return
        failures.append(f"{request.method} {request.full_path.rstrip('?')[:200]} -> {status}")

    with request_finished.connected_to(seen, app):
        yield failures
    assert not failures, (f"{len(failures)} request(s) answered with a server error: "
                          f"{failures[:20]}")

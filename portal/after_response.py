"""Run work once the answer has gone out to the browser.

For work whose length depends on who is asking (a mail that goes only to a real account) and
for slow work nobody needs to wait for (sending over SMTP). Done before answering, the first
would let anyone tell by the clock whether an address has an account, and the second adds
the mail server's round trips to the page.
"""

import logging
import threading
from collections.abc import Callable

from flask import Response

log = logging.getLogger("portal")

FALLBACK_SECONDS = 2.0


def after_response(response: Response, work: Callable[[], object], *, what: str) -> Response:
    """Call `work` once, when the server closes `response` (or FALLBACK_SECONDS after now).

    `work` runs outside the request: it opens the contexts it needs. Failures are logged by
    exception class only, since the answer is gone and nothing may reach the browser.
    """
    once = threading.Lock()

    def run() -> None:
        if not once.acquire(blocking=False):
            return
        fallback.cancel()
        try:
            work()
        except Exception as exc:
            log.error("%s after the response failed: %s", what, type(exc).__name__)

    # Servers close the response once it is sent (gunicorn always); werkzeug's development
    # server skips that when the browser hangs up early, so a timer makes sure it still runs.
    fallback = threading.Timer(FALLBACK_SECONDS, run)
    fallback.daemon = True
    fallback.start()
    response.call_on_close(run)
    return response

"""gunicorn settings for production: `gunicorn wsgi:app` picks this file up."""

import multiprocessing
import os

bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")
# Workers: the usual 2 x cores + 1, capped so a small VM does not run out of memory.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 9)))
threads = int(os.environ.get("PORTAL_THREADS", "1"))
timeout = 30  # a request taking longer is stuck; the worker is replaced
graceful_timeout = 20
keepalive = 5
max_requests = 2000  # recycle workers now and then
max_requests_jitter = 200
limit_request_line = 8190
# gunicorn 25+ opens a control socket in $HOME unless told not to: one path per host user, so
# two servers (a second portal, a test run) would fight over it. Off unless a path is given.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
# Worker heartbeats in memory, not on a disk that may stall (containers, slow volumes).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn heartbeat files, not data
# The app writes one JSON line per request (route template, status, duration, request id)
# and never the raw path, so gunicorn's access log is off. Should someone turn it on
# (--access-logfile -), its format still leaves out the path and the query string (invitation
# and reset tokens travel in paths): method, status, bytes, milliseconds, and the request id
# that joins the line to the app's JSON line.
accesslog = None
access_log_format = '%(h)s %(t)s "%(m)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
errorlog = "-"
loglevel = "info"
# Behind a TLS-terminating proxy on the same host, trust its X-Forwarded-* headers; set
# FORWARDED_ALLOW_IPS to the proxy's address otherwise, and PROXY_FIX_HOPS=1 for the app.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
raw_env = ["PORTAL_ENV=" + os.environ.get("PORTAL_ENV", "production")]

"""`make serve` (python -m portal.ops.serve): keys, database, then the production app."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import redis

from portal.ops import serve
from tests.ops.support import ROOT, Browser, free_port
from tests.support.databases import drop_database, sibling_database_url

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def test_keys_are_generated_once_into_a_private_file_and_reused(tmp_path, capsys):
    env = {"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite:///x.db",
           "RATELIMIT_STORAGE_URI": "memory://"}
    first = serve.prepare(env)
    path = tmp_path / "prod-keys.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated production keys" in capsys.readouterr().err
    again = serve.prepare(env)
    assert "generated production keys" not in capsys.readouterr().err
    for name in serve.KEY_NAMES:
        assert first[name] == again[name] and first[name]
    assert first["PORTAL_MASTER_KEYS"].startswith("serve1:")
    assert len(first["SECRET_KEY"]) >= 32
    assert (first["PORTAL_ENV"], first["MAIL_SERVER"], first["MAIL_PORT"]) == (
        "production", "127.0.0.1", "1025")


def test_keys_from_the_environment_win_and_no_file_is_written(tmp_path):
    given = {"SECRET_KEY": "k" * 40, "PORTAL_MASTER_KEYS": "ops:" + "Q" * 43,
             "PORTAL_INDEX_KEY": "R" * 43}
    env = serve.prepare({"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite:///x",
                         "RATELIMIT_STORAGE_URI": "memory://", **given})
    assert {k: env[k] for k in given} == given
    assert not (tmp_path / "prod-keys.env").exists()


def test_a_keys_file_others_can_read_is_refused(tmp_path):
    env = {"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite:///x.db",
           "RATELIMIT_STORAGE_URI": "memory://"}
    serve.prepare(env)
    (tmp_path / "prod-keys.env").chmod(0o644)
    with pytest.raises(SystemExit, match="readable by others"):
        serve.prepare(env)


def test_an_unreachable_redis_stops_it_with_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"Redis at redis://127\.0\.0\.1:\d+/0 does not answer"):
        serve.prepare({"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite:///x.db",
                       "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0"})


def _redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(serve.DEFAULTS["RATELIMIT_STORAGE_URI"],
                                         socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL: set TEST_DATABASE_URL")
def test_make_serve_creates_the_database_migrates_and_serves_the_production_app(tmp_path):
    if not _redis_answers():
        pytest.skip("needs Redis on 127.0.0.1:6379 (make serve's rate-limit store)")
    url = sibling_database_url(POSTGRES_URL, "serve")  # does not exist yet
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORTAL_INSTANCE_PATH": str(tmp_path),
           "DATABASE_URL": url, "PORTAL_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "portal.ops.serve"], cwd=ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        browser, deadline = Browser(f"http://127.0.0.1:{port}"), time.monotonic() + 60
        while True:
            try:
                status, headers, body = browser.get("/readyz")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "make serve did not answer in 60 s"
                time.sleep(0.2)
        assert status == 200, body
        assert headers["Strict-Transport-Security"].startswith("max-age=")  # production
        assert browser.get("/policies/privacy")[0] == 200  # `portal policies init` ran
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
        drop_database(url)
    output = (tmp_path / "serve.log").read_text()
    assert "created the database" in output
    assert '"route": "/readyz"' in output  # one JSON line per request
    assert stat.S_IMODE((tmp_path / "prod-keys.env").stat().st_mode) == 0o600

"""gunicorn.conf.py: loads the production app, sane settings, and an access log without paths."""

import base64
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.support import ROOT, Browser, Gunicorn

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def _key(fill: int) -> str:
    return base64.urlsafe_b64encode(bytes([fill]) * 32).rstrip(b"=").decode()


def production_env(tmp_path: Path, **changes) -> dict:
    env = {"PATH": os.environ["PATH"], "PORTAL_ENV": "production", "SECRET_KEY": "s" * 48,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
           "PORTAL_MASTER_KEYS": "k1:" + _key(7), "PORTAL_INDEX_KEY": _key(9),
           "MAIL_SERVER": "127.0.0.1", "PORTAL_INSTANCE_PATH": str(tmp_path),
           "MAIL_ALLOW_PLAINTEXT_LOOPBACK": "tests: nothing sends mail from this server"}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def gunicorn(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), *args, "wsgi:app"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def settings(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_gunicorn_check_config_loads_the_production_app(tmp_path):
    result = gunicorn("--check-config", env=production_env(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]


def test_production_without_mail_settings_fails_the_check_with_one_line(tmp_path):
    result = gunicorn("--check-config", env=production_env(tmp_path, MAIL_SERVER=None))
    assert result.returncode != 0
    assert "will not start in production: MAIL_SERVER is not set" in result.stderr + \
        result.stdout


def test_workers_come_from_the_cpu_count_and_timeouts_are_set(tmp_path):
    values = settings(gunicorn("--print-config", env=production_env(tmp_path)).stdout)
    assert values["workers"] == str(min(2 * multiprocessing.cpu_count() + 1, 9))
    assert values["timeout"] == "30"
    assert values["graceful_timeout"] == "20"
    assert values["bind"] == "['127.0.0.1:8000']"
    assert values["forwarded_allow_ips"] == "['127.0.0.1']"
    assert values["accesslog"] == "None"
    assert values["raw_env"] == "['PORTAL_ENV=production']"
    assert values["control_socket_disable"] == "True"  # no shared socket in $HOME
    for leak in ("%(r)s", "%(U)s", "%(q)s", "%(f)s"):
        assert leak not in values["access_log_format"]


def test_operators_can_override_workers_bind_and_trusted_proxy(tmp_path):
    env = production_env(tmp_path, WEB_CONCURRENCY="3", PORTAL_BIND="0.0.0.0:9000",
                         FORWARDED_ALLOW_IPS="10.0.0.5")
    values = settings(gunicorn("--print-config", env=env).stdout)
    assert values["workers"] == "3"
    assert values["bind"] == "['0.0.0.0:9000']"
    assert values["forwarded_allow_ips"] == "['10.0.0.5']"


@pytest.mark.slow
def test_an_access_log_turned_on_still_prints_no_path_token_or_query(app, tmp_path):
    config = {"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI":
              app.config["SQLALCHEMY_DATABASE_URI"], "INSTANCE_PATH": str(tmp_path)}
    server = Gunicorn(config, workers=1, workdir=tmp_path / "gunicorn",
                      extra_args=("--access-logfile", "-"))
    try:
        browser = Browser(server.base)
        status, headers, _ = browser.get("/invitation/secret-invite-token-4471?q=secret-query",
                                         headers={"X-Request-ID": "access-log-check"})
        assert status == 404
        assert headers["X-Request-ID"] == "access-log-check"
    finally:
        server.stop()
    log = server.log.read_text()
    access = [line for line in log.splitlines() if "request_id=access-log-check" in line]
    assert len(access) == 1 and '"GET" 404' in access[0]
    assert "secret-invite-token" not in log and "secret-query" not in log
    assert "/invitation" not in log

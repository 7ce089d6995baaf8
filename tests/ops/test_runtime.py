"""A serving process freezes what startup loaded, so collections skip it."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.ops.runtime import settle


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_settle_moves_startup_objects_out_of_the_collectors_way(app, unfrozen):
    tracked_before = len(gc.get_objects())
    settle()
    assert gc.get_freeze_count() >= tracked_before // 2
    assert len(gc.get_objects()) < tracked_before // 10


def test_the_wsgi_entry_point_serves_a_settled_app(tmp_path):
    """What gunicorn loads (wsgi:app) has its startup objects frozen."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PORTAL_ENV": "development", "PORTAL_INSTANCE_PATH": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}"}
    env.pop("TEST_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", "import gc, wsgi; print(gc.get_freeze_count())"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    assert int(out.split()[-1]) > 10_000

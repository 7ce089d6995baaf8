"""Statements built once at import must bind their parameters with real types, whatever
order the modules were imported in (a foreign key column is untyped until its target table
exists, and an untyped UUID parameter fails to bind on SQLite)."""

import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ("portal.crypto.envelope", "portal.accounts.identity", "portal.accounts.sessions",
           "portal.messaging.access", "portal.messaging.reading",
           "portal.messaging.lists", "portal.audit.service", "portal.policies.service")
CHECK = """
import importlib, sys
module = importlib.import_module(sys.argv[1])
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.base import Executable
from sqlalchemy.types import NullType
untyped, statements = [], 0
for name, value in vars(module).items():
    if isinstance(value, Executable):
        statements += 1
        for element in visitors.iterate(value):
            if isinstance(element, BindParameter) and isinstance(element.type, NullType):
                untyped.append(f"{name}:{element.key}")
print(statements, untyped)
"""


@pytest.mark.parametrize("module", MODULES)
def test_prebuilt_statements_type_every_parameter_when_imported_first(module):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CHECK, module], cwd=root, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    statements, untyped = out.split(" ", 1)
    assert int(statements) >= 1, f"{module} has no prebuilt statements any more"
    assert untyped == "[]", f"untyped parameters in {module}: {untyped}"

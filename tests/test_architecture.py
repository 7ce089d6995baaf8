"""The layers hold: the base imports no feature, every feature is registered, nothing is lost.

See docs/ARCHITECTURE.md. The base is what every feature may use; a feature reaches the base's
extension points through `portal.hooks`, never the other way round.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"

FEATURES = ("accounts", "admin", "estimates", "guardians", "main", "messaging", "ops",
            "policies", "records")
BASE_PACKAGES = ("audit", "crypto", "db", "mail")
BASE_MODULES = ("after_response", "downloads", "errors", "extensions", "forms", "hooks",
                "pages", "paging", "practice", "security", "templating", "text")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _base_files() -> list[Path]:
    files = [PORTAL / f"{name}.py" for name in BASE_MODULES]
    for package in BASE_PACKAGES:
        files.extend(sorted((PORTAL / package).glob("*.py")))
    return files


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
                found.extend((name, child.lineno, nested) for name in names)
            visit(child, inner)

    visit(tree, False)
    return found


def _is_feature(module: str) -> bool:
    return any(module == f"portal.{f}" or module.startswith(f"portal.{f}.") for f in FEATURES)


def test_every_base_module_exists_and_is_checked():
    files = _base_files()
    missing = [str(path) for path in files if not path.exists()]
    assert not missing
    assert len(files) >= 30  # the walk below checks something


def test_no_base_module_imports_a_feature():
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in _base_files() for module, line, _ in _imports(path)
                if _is_feature(module)]
    assert offences == []


def test_no_function_imports_inside_the_base():
    """A function-local import hides a dependency (and usually a cycle)."""
    offences = [f"{path.relative_to(ROOT)}:{line} {module}"
                for path in _base_files() for module, line, nested in _imports(path)
                if nested and module.startswith("portal")]
    assert offences == []


# The package's own __init__ is the application factory, which wires every feature in: stand
# in an empty package for it, so only the base modules themselves are imported.
BLOCKER = """
import importlib, importlib.abc, sys, types
package = types.ModuleType("portal")
package.__path__ = [{portal!r}]
sys.modules["portal"] = package
FEATURES = {features!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == "portal." + f or name.startswith("portal." + f + ".") for f in FEATURES):
            raise ImportError("feature blocked: " + name)
        return None
sys.meta_path.insert(0, Blocker())
for module in {modules!r}:
    importlib.import_module(module)
print("imported", len({modules!r}))
"""


def test_the_base_imports_in_a_fresh_interpreter_with_every_feature_blocked():
    """The static check above reads text; this runs the imports for real."""
    modules = sorted(_module_name(path) for path in _base_files())
    script = BLOCKER.format(portal=str(PORTAL), features=FEATURES, modules=modules)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"imported {len(modules)}"


def test_every_feature_registers_its_blueprint(app):
    assert set(app.blueprints) == set(FEATURES)
    for name in FEATURES:
        assert any(rule.endpoint.startswith(f"{name}.") for rule in app.url_map.iter_rules())


def test_a_feature_that_fails_to_import_stops_the_app():
    script = ("import sys; sys.modules['portal.estimates.views'] = None\n"
              "from portal import create_app\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "portal.estimates.views" in result.stderr


@pytest.mark.parametrize("feature", FEATURES)
def test_each_feature_plugs_in_through_one_init_app(feature):
    source = (PORTAL / feature / "feature.py").read_text()
    assert "def init_app(app: Flask) -> None:" in source
    assert "app.register_blueprint(bp)" in source

"""config is the floor every app builds on: none of its modules imports an app (top-level or
inside a function), apart from the root URL configuration, which mounts every app's routes."""

import ast
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "config"
APPS = ("accounts", "annotation", "frontend", "generation_workers", "training_bridge")
MOUNTS_THE_APPS = {"urls.py"}


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_config_module_imports_an_app():
    offending = {}
    for path in sorted(CONFIG.glob("*.py")):
        if path.name in MOUNTS_THE_APPS:
            continue
        apps = sorted(m for m in imported_modules(path.read_text()) if m.split(".")[0] in APPS)
        if apps:
            offending[path.name] = apps

    assert offending == {}


def test_the_check_sees_an_import_inside_a_function():
    source = "def make():\n    from annotation.models import AnnotatorProfile\n"

    assert imported_modules(source) == {"annotation.models"}

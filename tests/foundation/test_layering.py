"""Import rules read from the source with `ast` (imports at module level and inside functions).

- config is the floor every app builds on: none of its modules imports an app, apart from the
  root URL configuration, which mounts every app's routes.
- training_bridge's sub-packages import one way: `datasets` imports neither `training` nor
  `reward_models`; `training` may import `datasets`, never `reward_models`; `reward_models` may
  import both. The app-level modules (tasks, orchestration, admin, urls, commands) join them.
- No services, selectors or apis module imports a tasks module: tasks import services, and
  services publish tasks by name (training_bridge/publishing.py).
- `datasets/aggregation/` and `datasets/exporters/` import no django, rest_framework, celery or
  config, and of training_bridge only their own package.
- No import cycle among training_bridge's modules at module level; counting the imports
  inside functions, none that runs through a tasks module or across sub-packages.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
APPS = ("accounts", "annotation", "frontend", "generation_workers", "training_bridge")
MOUNTS_THE_APPS = {"urls.py"}
APP = "training_bridge"
NOT_BELOW = {  # sub-package -> sub-packages it may not import
    "datasets": ("training", "reward_models"),
    "training": ("reward_models",),
}
PURE = ("datasets.aggregation", "datasets.exporters")
PURE_MAY_NOT = ("django", "rest_framework", "celery", "config")
LAYERS = ("services", "selectors", "apis")


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


# -- training_bridge's modules and their imports ----------------------------------------------


def app_modules(root: Path) -> dict[str, Path]:
    """Every module of training_bridge (migrations aside) by dotted name; a package by its
    __init__."""
    found = {}
    for path in sorted((root / APP).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, module: str, *, is_package: bool, top_level_only: bool = False):
    """The dotted names a module imports: each `import a.b`, each `from a import b` as a.b and
    as a (a.b may be a module or a name in a). With top_level_only, only the imports that run
    when the module is imported (not inside functions or classes' methods, nor under
    `if TYPE_CHECKING:`)."""
    tree = ast.parse(source)
    nodes: Iterator[ast.AST] = _module_level(tree.body) if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _module_level(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _module_level(inner)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _sub_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layering_offences(root: Path) -> list[str]:
    """Every import that breaks one of the rules in the module docstring, as readable lines."""
    modules = app_modules(root)
    offences = []
    for module, path in modules.items():
        names = imports_of(path.read_text(), module, is_package=path.name == "__init__.py")
        sub = _sub_package(module)
        for other in NOT_BELOW.get(sub, ()):
            offences += [
                f"{module} imports {n}" for n in sorted(names) if _within(n, f"{APP}.{other}")
            ]
        if any(part in LAYERS for part in module.split(".")[1:]):
            offences += [
                f"{module} imports the tasks module {n}"
                for n in sorted(names)
                if n.split(".")[-1] == "tasks" and _within(n, APP)
            ]
        for pure in PURE:
            if _within(module, f"{APP}.{pure}"):
                offences += [
                    f"{module} imports {n}"
                    for n in sorted(names)
                    if n.split(".")[0] in PURE_MAY_NOT
                    or (_within(n, APP) and not _within(n, f"{APP}.{pure}"))
                ]
    return offences


def import_cycles(root: Path, *, top_level_only: bool = True) -> list[list[str]]:
    """The cycles of the graph of imports among training_bridge's modules (an import of a.b.c
    also runs the packages a and a.b): those at module level, or all of them."""
    modules = app_modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = imports_of(
            path.read_text(),
            module,
            is_package=path.name == "__init__.py",
            top_level_only=top_level_only,
        )
        edges = set()
        for name in names:
            parts = name.split(".")
            edges.update(
                ".".join(parts[:i])
                for i in range(2, len(parts) + 1)
                if ".".join(parts[:i]) in modules
            )
        edges.discard(module)
        # a module's own packages run before it: not an import it makes
        graph[module] = {e for e in edges if not _within(module, e)}
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


# -- tests --------------------------------------------------------------------------------------


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


def test_training_bridge_sub_packages_import_one_way_and_services_import_no_tasks():
    assert layering_offences(ROOT) == []


def test_training_bridge_has_no_module_level_import_cycle():
    assert import_cycles(ROOT) == []


def test_no_import_cycle_runs_through_a_tasks_module_or_across_sub_packages():
    # imports inside functions included: a few lazy imports inside one package stay allowed
    crossing = [
        cycle
        for cycle in import_cycles(ROOT, top_level_only=False)
        if any(module.split(".")[-1] == "tasks" for module in cycle)
        or len({_sub_package(module) for module in cycle}) > 1
    ]

    assert crossing == []


def test_the_layering_check_sees_each_kind_of_offence(tmp_path):
    # given a small app tree holding one offence of each kind, all inside functions but one
    files = {
        "datasets/__init__.py": "",
        "datasets/services/__init__.py": "",
        "datasets/services/freezing.py": (
            "def publish():\n    from training_bridge.tasks import export_task\n"
        ),
        "datasets/selectors/__init__.py": "",
        "datasets/selectors/sel.py": "def f():\n    from training_bridge.training import runs\n",
        "datasets/aggregation/__init__.py": "",
        "datasets/aggregation/specs.py": "from config.celery import app\n",
        "training/__init__.py": "",
        "training/runs.py": "from training_bridge.reward_models.registry import register\n",
        "reward_models/__init__.py": "",
        "reward_models/registry.py": "from training_bridge.training import runs\n",
    }
    for name, text in files.items():
        path = tmp_path / APP / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / APP / "__init__.py").write_text("")

    # then each one is named, and the module-level cycle is found
    assert layering_offences(tmp_path) == [
        "training_bridge.datasets.aggregation.specs imports config.celery",
        "training_bridge.datasets.aggregation.specs imports config.celery.app",
        "training_bridge.datasets.selectors.sel imports training_bridge.training",
        "training_bridge.datasets.selectors.sel imports training_bridge.training.runs",
        "training_bridge.datasets.services.freezing imports the tasks module training_bridge.tasks",
        "training_bridge.training.runs imports training_bridge.reward_models.registry",
        "training_bridge.training.runs imports training_bridge.reward_models.registry.register",
    ]
    assert import_cycles(tmp_path) == [
        [
            "training_bridge.reward_models.registry",
            "training_bridge.training.runs",
            "training_bridge.reward_models.registry",
        ]
    ]

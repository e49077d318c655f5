"""The layout docs/architecture.md promises, checked on the source: which package may import
which, no import cycle, function-local imports only for heavy modules, no module over 400
lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("generation", "studies", "histostudy")
MAX_LINES = 400
# generation's packages in order: each imports only those before it (and the shared modules)
LAYERS = ("tiles", "annotation", "generators", "cohorts", "evaluation", "experiment")
SHARED = ("models", "ldm", "plots", "presets")
# what studies may import of generation (docs/architecture.md, "Entry points")
ENTRY_POINTS = {
    "generation.tiles",
    "generation.annotation",
    "generation.generators",
    "generation.cohorts",
    "generation.evaluation",
    "generation.experiment",
    "generation.models",
    "generation.ldm.config",
    "generation.presets",
    "generation.admin",
}
# modules that may load lazily inside a function: heavy, and most callers never need them
LAZY = (
    "diffusers",
    "transformers",
    "accelerate",
    "sklearn",
    "skimage",
    "matplotlib",  # generation.plots.pyplot(): on the first plot, not on import
    "generation.ldm.train",
    "generation.ldm.pipeline",
    "generation.ldm.budget",
    "generation.ldm.precision",  # imports torch; the commands flush subnormal floats with it
    "generation.checks",  # registered in AppConfig.ready()
    "torch",  # generation.checks: only when HISTOSTUDY_DEVICE=cuda, so the web stays light
    "generation.models",  # plots.py, for a type only
    "django.contrib.auth",  # get_user_model() at call time
)


def app_modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether inside a function) for every runtime import of a file;
    imports under `if TYPE_CHECKING:` are types only and left out."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for n in ast.walk(node)}
    local: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:  # `from package import module` imports the module
                full = f"{node.module}.{alias.name}"
                found.append((full if full in MODULES else node.module, id(node) in local))
    return found


MODULES = app_modules()


def owner(module: str) -> str:
    """The app module an import names: the longest known prefix."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module


def test_generation_never_imports_studies_and_studies_uses_entry_points_only():
    wrong = []
    for name, path in MODULES.items():
        for module, _ in imports(path):
            if name.startswith("generation") and module.startswith("studies"):
                wrong.append(f"{name} imports {module}")
            entry = module in ENTRY_POINTS or module.startswith("generation.models.")
            if name.startswith("studies") and module.startswith("generation.") and not entry:
                wrong.append(f"{name} imports {module}, not an entry point")
    assert wrong == []


def test_generation_packages_import_only_the_layers_before_them():
    wrong = []
    for name, path in MODULES.items():
        parts = name.split(".")
        if parts[0] != "generation" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        allowed = set(LAYERS[: LAYERS.index(parts[1]) + 1]) | set(SHARED)
        for module, _ in imports(path):
            target = module.split(".")
            inside = target[0] == "generation" and len(target) > 1 and target[1] in LAYERS
            if inside and target[1] not in allowed:
                wrong.append(f"{name} imports {module}")
    assert wrong == []


def test_no_import_cycle_between_modules():
    graph = {
        name: {owner(m) for m, _ in imports(path) if owner(m) and owner(m) != name}
        for name, path in MODULES.items()
    }
    # a package's __init__ re-exporting its modules is not a cycle with them
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_function_local_imports_are_only_for_heavy_modules():
    wrong = [
        f"{name} imports {module} inside a function"
        for name, path in MODULES.items()
        for module, local in imports(path)
        if local and not any(module == m or module.startswith(m + ".") for m in LAZY)
    ]
    assert wrong == []


def test_no_app_module_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in MODULES.values()
        if (lines := path.read_text().count("\n")) > MAX_LINES
    }
    assert long == {}

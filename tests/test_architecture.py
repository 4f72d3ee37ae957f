"""The shape of the code, checked from its source (ast) so that it cannot drift back:

- the import graph of trainer/ and dashboard/ has no cycle (a package's own modules count as the
  package: ``trainer.runlog`` re-exports its modules);
- imports go one way: dashboard -> trainer, never back, and trainer never imports Streamlit;
  experiments sit above the queue (the worker reaches them through ``register_poll_hook``);
- every file name of the runs root is spelled in trainer/runlog/ only;
- one SCHEMA_VERSION.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from trainer import runlog

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trainer", "dashboard")
UNITS = ("trainer.runlog",)  # packages whose modules are one node of the graph


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _node(name: str) -> str:
    for unit in UNITS:
        if name == unit or name.startswith(unit + "."):
            return unit
    return name


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports count)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        here = _node(name)
        edges = {_node(m) for m in _imports(path, name) if m in MODULES}
        graph.setdefault(here, set()).update(edges - {here})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("trainer")))
def test_trainer_never_imports_the_app(module: str) -> None:
    bad = {m for m in _imports(MODULES[module], module)
           if m.split(".")[0] in ("dashboard", "streamlit")}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_experiments_sit_above_the_queue() -> None:
    below = [m for m in MODULES if m.startswith("trainer") and not m.startswith(
        "trainer.experiments") and m != "trainer.__main__"]
    for module in below:
        ups = {m for m in _imports(MODULES[module], module) if m.startswith("trainer.experiments")}
        assert not ups, f"{module} imports {sorted(ups)}: experiments are a layer above it"


FILE_NAMES = (runlog.CONFIG, runlog.STATUS, runlog.METRICS, runlog.SUMMARY, runlog.PREDICTIONS,
              runlog.CHECKPOINT, runlog.STDOUT, runlog.META, runlog.METRICS_CACHE, runlog.TRASH,
              runlog.EXPERIMENTS_DIR, runlog.EXPERIMENT_FILE, runlog.WORKER_LOCK,
              runlog.WORKER_LOG)
# safe_read (size limits by file name) and procs (a trainer holds its stdout.log open) sit below
# runlog, which reads through the one and asks the other whether a run's process lives: they
# cannot import runlog's names without a cycle.
SPELLS_NAMES = ("trainer.runlog", "trainer.safe_read", "trainer.procs")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_every_file_name_of_the_runs_root_is_spelled_in_runlog_only() -> None:
    found = []
    for module, path in MODULES.items():
        if _node(module) in SPELLS_NAMES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in FILE_NAMES
                    and id(node) not in docs):
                found.append(f"{module}:{node.lineno} {node.value!r}")
    assert not found, "use runlog's names: " + ", ".join(found)


def test_one_schema_version() -> None:
    owners = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(isinstance(t, ast.Name) and t.id == "SCHEMA_VERSION"
                            for t in node.targets)):
                owners.append(module)
    assert owners == ["trainer.runlog"]


def test_no_file_name_is_used_in_two_folders() -> None:
    # A name says what lives in the file: pages/launch.py beside launch.py, or runlog's
    # metrics_table.py beside the metrics' growable columns, made a reader open the wrong one.
    seen: dict[str, list[str]] = {}
    for folder in ("app.py", "dashboard", "trainer", "benchmarks", "scripts"):
        path = ROOT / folder
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if file.name != "__init__.py":
                seen.setdefault(file.name, []).append(str(file.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}

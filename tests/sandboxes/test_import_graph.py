"""The import graph of the apps: services never reach the Celery tasks that call them, by any path.

Every ``import`` counts, also one inside a function (a lazy import is still an
edge a reader has to follow), so a cycle hidden behind a local import fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("sandboxes", "lessons", "courseplatform")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body), from the source alone."""
    modules = {_module_name(p): p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                stem = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
            for dotted in targets:
                # The longest project module the name starts with (``a.b.c`` imports ``a.b`` if ``a.b.c`` is a name in it).
                target = dotted
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_service_module_reaches_a_tasks_module():
    graph = import_graph()
    tasks = {m for m in graph if m.endswith(".tasks")}
    services = [m for m in graph if ".services" in m or m.endswith((".exercises", ".cell_runs"))]
    assert tasks and services
    offending = {s: sorted(reachable(graph, s) & tasks) for s in services if reachable(graph, s) & tasks}
    assert offending == {}


def test_no_cycle_runs_through_a_tasks_module():
    graph = import_graph()
    cycles = [t for t in graph if t.endswith(".tasks") and t in reachable(graph, t)]
    assert cycles == []

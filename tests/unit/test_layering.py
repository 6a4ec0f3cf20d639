"""The engine's layering, checked on the source: imports run one way and never in a circle.

Every import counts, including the ones inside functions (a lazy import is still a
dependency; it only hides a circle from Python until the worst moment). The rules:

1. No circle between modules.
2. The engine's packages form one stack (`LAYERS`, bottom first): a module imports only
   from its own package or a package below it.
3. Pure modules (`PURE`) do no I/O: they import only other pure modules, and no database,
   Redis, HTTP or broker library.
4. The engine never imports the app (Reflex state, pages, the CLI, the HTTP routes).
5. The simulator is a separate program speaking SmartAPI: it imports nothing of ours but the
   exchange's pure SL-limit rules (`broker.price_bands`, which paper trading applies too), and
   the engine takes only its demo account's well-known credentials (`ats_app.simulator.config`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "ats_app.engine"

LAYERS = ("core", "store", "tenants", "notify", "broker", "market", "exits", "risk", "execution",
          "reports", "intake", "telegram", "services")

PURE = {
    "core.errors", "core.money", "core.fsm", "core.clock",
    "broker.base", "broker.errors", "broker.parsing", "broker.status", "broker.reconcile",
    "broker.charges", "broker.price_bands",
    "market.instruments", "market.resolve",
    "execution.signals", "intake.messages",
    "exits.rules", "exits.tracker",
    "execution.sizing",
    "notify.messages",
    "reports.replay_rules", "reports.metrics", "reports.tradingview_trades",
}
IO_LIBRARIES = {"sqlmodel", "sqlalchemy", "redis", "rq", "requests", "httpx", "SmartApi",
                "websocket", "apprise", "psycopg", "socket", "subprocess", "urllib", "reflex"}
# Libraries a pure module may name for their types alone: parsing classifies the SDK's and
# requests' exceptions into ours, without calling either.
TYPES_ONLY = {"broker.parsing": {"SmartApi", "requests"}}
SIMULATOR_FROM_ENGINE = {"ats_app.simulator.config"}
# The exchange's SL-limit rules: pure, and the simulator must apply exactly what paper does.
SIMULATOR_MAY_IMPORT = {"ats_app.engine.broker.price_bands"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (ROOT / "ats_app").rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module (ours or a library's top level) `path` imports, at any depth of code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` names a module; `from mod import name` names a symbol
            names = [f"{node.module}.{a.name}" for a in node.names]
            names = [n if n in known else node.module for n in names]
        for name in names:
            if not name.startswith("ats_app"):
                found.add(name.split(".")[0])
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            found.add(name)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {m: {d for d in imports_of(p, known) if d != m} for m, p in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _engine_package(module: str) -> str | None:
    if not module.startswith(ENGINE + "."):
        return None
    return module.split(".")[2]


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for module, deps in graph.items():
        here = _engine_package(module)
        for dep in deps:
            there = _engine_package(dep)
            if module.startswith(ENGINE) and dep.startswith("ats_app.") and not (
                    dep.startswith(ENGINE) or dep in SIMULATOR_FROM_ENGINE):
                bad.append(f"{module} -> {dep}: the engine imports the app")
            if here is None or there is None or here == there:
                continue
            if here not in rank or there not in rank:
                bad.append(f"{module} -> {dep}: outside the declared layers")
            elif rank[there] > rank[here]:
                bad.append(f"{module} -> {dep}: {here} may not import {there} (above it)")
    return sorted(bad)


def purity_violations(graph: dict[str, set[str]]) -> list[str]:
    pure = {f"{ENGINE}.{m}" for m in PURE}
    bad = []
    for module in sorted(pure):
        for dep in sorted(graph.get(module, ())):
            if dep.startswith("ats_app") and dep not in pure:
                bad.append(f"{module} -> {dep}: a pure module imports one that is not")
            elif dep in IO_LIBRARIES and dep not in TYPES_ONLY.get(module[len(ENGINE) + 1:], ()):
                bad.append(f"{module} -> {dep}: a pure module imports an I/O library")
    return bad


def simulator_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in graph.items():
        for dep in deps:
            if module.startswith("ats_app.simulator") and dep.startswith("ats_app.") \
                    and not dep.startswith("ats_app.simulator") \
                    and dep not in SIMULATOR_MAY_IMPORT:
                bad.append(f"{module} -> {dep}: the simulator imports our code")
    return sorted(bad)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(_modules())


def test_every_pure_module_exists(graph: dict[str, set[str]]) -> None:
    assert {m for m in PURE if f"{ENGINE}.{m}" not in graph} == set()


def test_no_import_circle(graph: dict[str, set[str]]) -> None:
    assert circles(graph) == []


def test_packages_import_only_downwards(graph: dict[str, set[str]]) -> None:
    packages = {p.name for p in (ROOT / "ats_app/engine").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)
    assert layering_violations(graph) == []


def test_pure_modules_do_no_io(graph: dict[str, set[str]]) -> None:
    assert purity_violations(graph) == []


def test_the_simulator_is_a_separate_program(graph: dict[str, set[str]]) -> None:
    assert simulator_violations(graph) == []


# The checks themselves must catch what they are for: each fed a graph with one bad edge.

def test_a_new_circle_is_caught() -> None:
    g = {f"{ENGINE}.store.db": {f"{ENGINE}.store.audit"},
         f"{ENGINE}.store.audit": {f"{ENGINE}.store.models"},
         f"{ENGINE}.store.models": {f"{ENGINE}.store.db"}}
    assert circles(g) == [sorted(g)]


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    # Through the real parser: a lazy import inside a function counts.
    src = tmp_path / "gate.py"
    src.write_text("def f():\n    from ats_app.engine.execution import positions\n")
    known = {f"{ENGINE}.execution.positions", f"{ENGINE}.risk.gate"}
    deps = imports_of(src, known)
    assert deps == {f"{ENGINE}.execution.positions"}
    assert layering_violations({f"{ENGINE}.risk.gate": deps}) == [
        f"{ENGINE}.risk.gate -> {ENGINE}.execution.positions: risk may not import execution "
        "(above it)"]


def test_io_in_a_pure_module_is_caught() -> None:
    g = {f"{ENGINE}.exits.rules": {"redis", f"{ENGINE}.store.db"}}
    assert len(purity_violations(g)) == 2


def test_the_engine_importing_the_app_is_caught() -> None:
    g = {f"{ENGINE}.risk.gate": {"ats_app.state.auth"},
         "ats_app.simulator.rest": {f"{ENGINE}.broker.parsing"}}
    assert layering_violations(g) == [f"{ENGINE}.risk.gate -> ats_app.state.auth: the engine "
                                      "imports the app"]
    assert simulator_violations(g) == [f"ats_app.simulator.rest -> {ENGINE}.broker.parsing: "
                                       "the simulator imports our code"]

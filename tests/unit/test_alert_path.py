"""The README's walk of one alert, from `POST /webhook/{token}` to the broker call, is true:
at most six files, each step a real call into the next, each a layer down the stack."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ats_app.engine.broker.angel import AngelBroker
from ats_app.engine.broker.base import Broker
from ats_app.engine.store import queueing
from tests.unit.test_layering import LAYERS, ROOT, _modules, imports_of

STEP = re.compile(r"^\d\. `([^`]+\.py)`", re.M)


def readme_path() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("One alert, from the webhook to the broker"):]
    section = section[:section.index("\n\n", section.index("1. "))]
    return [p if p.startswith("ats_app/") else f"ats_app/{p}" for p in STEP.findall(section)]


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _rank(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[2]) if parts[1] == "engine" else len(LAYERS)  # the app: on top


def _imports(path: str) -> set[str]:
    return imports_of(ROOT / path, set(_modules()))


def _calls(path: str, attribute: str) -> bool:
    """`path` calls a function or method of that name somewhere."""
    tree = ast.parse((ROOT / path).read_text())
    called = (n.func for n in ast.walk(tree) if isinstance(n, ast.Call))
    return any((isinstance(f, ast.Attribute) and f.attr == attribute)
               or (isinstance(f, ast.Name) and f.id == attribute) for f in called)


def test_the_readme_names_at_most_six_files_that_exist() -> None:
    files = readme_path()
    assert files[0] == "ats_app/api.py" and files[-1] == "ats_app/engine/broker/sdk.py"
    assert len(files) <= 6
    assert all(Path(ROOT / f).is_file() for f in files)


def test_each_step_goes_down_a_layer() -> None:
    ranks = [_rank(_module(f)) for f in readme_path()]
    assert ranks == sorted(ranks, reverse=True)


def test_each_step_calls_the_next() -> None:
    api, alerts, entry, submit, angel, sdk = readme_path()
    assert _module(alerts) in _imports(api)
    # the webhook enqueues the entry job by name (no import of the order path)
    assert "ats_app.engine.store.queueing" in _imports(alerts) and _calls(alerts, "enqueue_alert")
    assert f"{_module(entry)}.handle_alert" == queueing.HANDLE_ALERT
    assert _module(submit) in _imports(entry)
    # submit calls the Broker interface (a Protocol); the live adapter implements it
    assert _calls(submit, "place_order") and hasattr(Broker, "place_order")
    assert "place_order" in vars(AngelBroker)
    assert _module(angel) == AngelBroker.__module__
    assert _module(sdk) in _imports(angel)

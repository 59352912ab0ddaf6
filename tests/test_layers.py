"""Layering (design.md): the math kernels and the engine import neither dask.distributed nor snakemake, and
no module of the two packages imports another that imports it back.

The modules are imported one by one in a fresh interpreter, which lists the forbidden modules loaded after
each import: the first module that pulls one in is named, and nothing another test imported hides it. The
import graph is read from the source (every ``import``, also inside functions).
"""

from __future__ import annotations

import ast
import graphlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import pipeline.data
import pipeline.dynamics
import pipeline.end_game
import pipeline.losses
import pipeline.problems
import pipeline.stationary


def _modules(package: ModuleType) -> tuple[str, ...]:
    """The package and its modules, by name."""
    return (package.__name__, *(f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)))


KERNELS_AND_ENGINE = (
    "pipeline",
    *_modules(pipeline.losses),
    *_modules(pipeline.dynamics),
    *_modules(pipeline.problems),
    *_modules(pipeline.end_game),
    *_modules(pipeline.stationary),
    *_modules(pipeline.data),
    "pipeline.batch_record",
    "pipeline.trajectory",
    "pipeline.resolution",
    "pipeline.initialization",
    "pipeline.seeds",
)
"""The modules of the two lowest layers, and the package a notebook imports."""

FORBIDDEN = ("dask.distributed", "distributed", "snakemake")

_PROBE = """
import importlib, json, sys
forbidden = tuple(sys.argv[1].split(","))
loaded = {}
for module in sys.argv[2].split(","):
    importlib.import_module(module)
    loaded[module] = sorted(name for name in sys.modules if name in forbidden or name.split(".")[0] in forbidden)
print(json.dumps(loaded))
"""


def forbidden_after_each(modules: tuple[str, ...], forbidden: tuple[str, ...] = FORBIDDEN) -> dict[str, list[str]]:
    """Module -> the forbidden modules in ``sys.modules`` once it and the ones before it are imported."""
    command = [sys.executable, "-c", _PROBE, ",".join(forbidden), ",".join(modules)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout)


def test_kernels_and_engine_import_no_dask_distributed_or_snakemake() -> None:
    loaded = forbidden_after_each(KERNELS_AND_ENGINE)
    assert list(loaded) == list(KERNELS_AND_ENGINE)
    offending = {module: names for module, names in loaded.items() if names}
    assert offending == {}, f"first offender: {next(iter(offending))} imports {next(iter(offending.values()))}"


def test_the_probe_sees_a_forbidden_import() -> None:
    loaded = forbidden_after_each(
        (
            "pipeline.dynamics",
            "pipeline.dynamics.gradient_descent",
            "pipeline.dynamics.result",
            "pipeline.problems",
            "pipeline.batch_record",
            "dask.distributed",
            "pipeline.losses.nets",
        )
    )
    assert loaded["pipeline.dynamics"] == []
    assert "dask.distributed" in loaded["dask.distributed"] and "distributed" in loaded["pipeline.losses.nets"]


def import_graph(packages: tuple[str, ...] = ("pipeline", "analysis")) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (a submodule's import of its own package is left out:
    a package's ``__init__`` re-exports its submodules, which Python resolves)."""
    root = Path(__file__).resolve().parents[1]
    files = {
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
        for package in packages
        for path in (root / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in files else node.module)
        graph[name] = {m for m in imported if m in files and m != name and not name.startswith(f"{m}.")}
    return graph


def test_no_import_cycles() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = import_graph()
    graph["pipeline.data.dataset"].add("pipeline.data.sources")  # sources imports dataset
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_the_piecewise_test_does_not_reach_back_into_the_second_order_test() -> None:
    graph = import_graph()
    assert "pipeline.stationary.pieces" in graph["pipeline.stationary.second_order"]
    assert "pipeline.stationary.hessian" in graph["pipeline.stationary.pieces"]  # the flat space lives there
    assert "pipeline.stationary.second_order" not in graph["pipeline.stationary.pieces"]

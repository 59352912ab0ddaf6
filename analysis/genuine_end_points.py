"""Gradient-descent end points of a survey store against the genuine-cell criterion (theory.md section 10).

For each eligible run (a width-1 ReLU student with a bias and a trained scalar output on 1-D inputs with
random labels) :func:`end_point_cells` regenerates the run's data, finds the activation cell of its end point
and asks :func:`analysis.genuine.is_genuine` whether that cell holds a genuine least-squares solution;
:func:`check_end_points` counts the differentiable local minima in genuine cells and in others (theory: none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from analysis.genuine import Orientation, cell_least_squares, is_genuine
from pipeline.survey import Survey, parse_survey
from pipeline.survey.plan import make_plan, run_settings

__all__ = ["DIFFERENTIABLE_MIN_TYPES", "check_end_points", "end_point_cells"]

DIFFERENTIABLE_MIN_TYPES: tuple[str, ...] = ("global_min", "spurious_local_min", "local_min")
"""End-point types (``end_point_type`` flag meanings) that count as local minima."""


def _stored_survey(dataset: xr.Dataset) -> Survey:
    """The survey of a store: attribute ``resolved_survey`` (YAML), else ``resolved_survey_json``.

    Named after the store attribute ``survey``, as ``pipeline.workflow.commands.common.load_resolved`` names a
    resolved survey after its folder.
    """
    name = str(dataset.attrs.get("survey", "survey"))
    text = dataset.attrs.get("resolved_survey")
    data = yaml.safe_load(text) if text else json.loads(dataset.attrs["resolved_survey_json"])
    return parse_survey(data, name, source=f"{name}: store attribute resolved_survey")


def _eligible(settings: Mapping[str, Any]) -> bool:
    """A width-1 ReLU student with trained scalar output on 1-D gaussian/interval inputs, bias, random labels."""
    return (
        settings["width"] == 1
        and settings["input_dim"] == 1
        and settings["bias"]
        and settings["input_distribution"] in ("interval", "gaussian")
        and settings["target"] == "random"
        and settings["output_dim"] == 1
        and settings["activation"] == "relu"
        and settings["output_layer"] == "trained"
    )


def _end_point_cell(x: np.ndarray, w: np.ndarray) -> tuple[int, Orientation]:
    """Cell ``(k, orientation)`` of end point ``w = (w_x, b)`` over sorted raw inputs ``x``.

    Points on the kink (``w^T (x, 1) == 0``) count as inactive; at a differentiable end point there are none.
    The all-active and all-inactive cells are named ``(0, "right")`` and ``(n, "right")``.
    """
    active = w[0] * x + w[1] > 0
    if w[0] >= 0 or active.all() or not active.any():
        return len(x) - int(active.sum()), "right"
    return int(active.sum()), "left"


def end_point_cells(store: str | Path | xr.Dataset) -> pd.DataFrame:
    """The activation cell of each eligible run's end point and whether it is genuine.

    Eligible runs (assumptions): width 1, ``input_dim`` 1 with ``bias``, ``input_distribution`` interval or
    gaussian, ``target`` random, scalar trained output, ReLU. Each run's data are regenerated with
    :func:`pipeline.batch.run_inputs` from the plan of the stored survey (run ``r`` is plan row ``r``). The
    end point is ``end_w``/``end_a`` (the classified point), or ``w_final``/``a_final`` if those are absent;
    the input column order is ``(x, 1)`` (bias last, :func:`pipeline.data.append_bias`). Point types are
    decoded from the ``flag_meanings`` of ``end_point_type``.

    Returns
    -------
    pandas.DataFrame
        One row per eligible run: ``run``, ``n``, ``k``, ``orientation``, ``point_type`` (name),
        ``n_active``, ``differentiable``, ``differentiable_min``, ``genuine`` and ``prediction_gap``
        (``max_i |f(x_i) - LS prediction_i|``: near 0 when the end point is the cell's LS minimum).
    """
    from pipeline.batch import run_inputs  # imports torch: only the store check needs it
    from pipeline.store import open_store

    dataset = store if isinstance(store, xr.Dataset) else open_store(store)
    survey = _stored_survey(dataset)
    plan = make_plan(survey)
    runs = [int(r) for r in dataset["run"].values if _eligible(run_settings(plan.loc[int(r)]))]
    columns = ("end_w", "end_a") if "end_w" in dataset else ("w_final", "a_final")
    selected = dataset[[*columns, "end_point_type", "end_differentiable"]].sel(run=runs).load()
    meanings = str(dataset["end_point_type"].attrs.get("flag_meanings", " ".join(DIFFERENTIABLE_MIN_TYPES))).split()
    rows = []
    for i, run in enumerate(runs):
        row = plan.loc[run]
        data = run_inputs(run_settings(row), survey.master_seed, int(row["data_seed"]), int(row["init_seed"])).dataset
        order = np.argsort(data.x[:, 0], kind="stable")
        x, y = data.x[order, 0], data.y[order, 0]
        w = selected[columns[0]].values[i, 0, :2]
        a = float(selected[columns[1]].values[i, 0, 0])
        k, orientation = _end_point_cell(x, w)
        fit = cell_least_squares(x, y, k, orientation)
        point_type = meanings[int(selected["end_point_type"].values[i])]
        differentiable = bool(selected["end_differentiable"].values[i])
        rows.append(
            {
                "run": run,
                "n": len(x),
                "k": k,
                "orientation": orientation,
                "point_type": point_type,
                "differentiable": differentiable,
                "differentiable_min": differentiable and point_type in DIFFERENTIABLE_MIN_TYPES,
                "n_active": int(fit.active.sum()),
                "genuine": is_genuine(x, y, k, orientation),
                "prediction_gap": float(np.max(np.abs(a * np.maximum(w[0] * x + w[1], 0.0) - fit.prediction))),
            }
        )
    return pd.DataFrame(rows)


def check_end_points(store: str | Path | xr.Dataset) -> dict[str, int]:
    """Counts checking that differentiable local minima found by GD sit in genuine cells (theory.md 10).

    Returns
    -------
    dict
        ``eligible`` runs (see :func:`end_point_cells`); ``differentiable_minima`` among them, of which
        ``dead`` have no active point (the trivially genuine all-inactive cell), ``genuine`` sit in a genuine
        cell and ``not_genuine`` do not (theory: 0); ``other_in_genuine``: eligible end points of other
        types (saddles, non-differentiable or non-stationary points) whose cell is genuine.
    """
    cells = end_point_cells(store)
    names = ("eligible", "differentiable_minima", "dead", "genuine", "not_genuine", "other_in_genuine")
    if cells.empty:
        return dict.fromkeys(names, 0)
    minima = cells["differentiable_min"].to_numpy(bool)
    genuine = cells["genuine"].to_numpy(bool)
    dead = cells["n_active"].to_numpy() == 0
    counts = (len(cells), minima.sum(), (minima & dead).sum(), (minima & genuine).sum(), (minima & ~genuine).sum(),
              (~minima & genuine).sum())  # fmt: skip
    return {name: int(count) for name, count in zip(names, counts, strict=True)}

"""Comparisons with published results: one function per reproduction survey.

Each function reads a survey store and returns a :class:`Reproduction`: the paper, its claim, a tidy
table of what we measured (rates with 95% Wilson intervals) and one plain-language paragraph. The
report adds the paragraph of the matching survey (:data:`REPRODUCTIONS`, keyed by survey name) and
the README's "Reproductions" table is copied from these paragraphs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.endings import ENDING_VARIABLES, run_endings
from analysis.genuine import genuine_rate_table
from analysis.genuine_end_points import check_end_points
from analysis.query import decode
from analysis.runs import run_arrays, run_frame
from analysis.stats import wilson_interval
from pipeline.losses.activations import activation_from_settings
from pipeline.stationary import labels

__all__ = ["REPRODUCTIONS", "Reproduction", "reproduction_for"]


@dataclass(frozen=True)
class Reproduction:
    """What a paper found and what the survey measured."""

    paper: str
    claim: str
    table: pd.DataFrame
    reading: str


def _rate_row(key: dict[str, object], successes: int, trials: int) -> dict[str, object]:
    low, high = wilson_interval(successes, trials)
    return {**key, "count": successes, "total": trials, "rate": successes / trials if trials else np.nan,
            "ci_low": low, "ci_high": high}  # fmt: skip


def _percent(row: Any) -> str:
    """``rate% [low, high]`` of a table row from ``DataFrame.itertuples``."""
    return f"{100 * row.rate:.1f}% [{100 * row.ci_low:.1f}, {100 * row.ci_high:.1f}]"


def _point_types(dataset: xr.Dataset) -> np.ndarray:
    return decode(dataset["end_point_type"], labels.POINT_TYPE)


def safran_shamir(dataset: xr.Dataset) -> Reproduction:
    """Fraction of runs at certified spurious local minima per (k, student width)."""
    frame = run_frame(dataset, ["loss_final"], by=["teacher_width", "width"])
    frame["spurious"] = _point_types(dataset) == "spurious_local_min"
    frame["loss_spurious"] = frame["loss_final"] >= 1e-3
    rows = []
    for (k, width), group in frame.groupby(["teacher_width", "width"]):
        row = _rate_row({"k": int(k), "width": int(width)}, int(group["spurious"].sum()), len(group))
        row["loss_above_1e-3"] = int(group["loss_spurious"].sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    square = table[table["width"] == table["k"]]
    reading = (
        "Safran and Shamir found spurious local minima common and increasingly so with k for n = k. "
        "Here, runs ending at a spurious local minimum certified by the Hessian test (n = k): "
        + "; ".join(f"k = {row.k}: {_percent(row)}" for row in square.itertuples())
        + ". Runs with final loss >= 1e-3 (the paper's threshold) are counted beside each rate."
    )
    claim = "Spurious local minima are common and become more frequent as k = n grows."
    return Reproduction("Safran & Shamir, ICML 2018", claim, table, reading)


def cheridito_jentzen_rossmannek(dataset: xr.Dataset) -> Reproduction:
    """Spurious local minima for ReLU, leaky ReLU and quadratic, and whether ReLU ones have dead neurons."""
    frame = run_frame(dataset, ["n_dead_neurons", *ENDING_VARIABLES], by=["activation", "width"])
    frame["spurious"] = _point_types(dataset) == "spurious_local_min"
    frame["unresolved"] = ~run_endings(run_arrays(dataset, ENDING_VARIABLES)).is_resolved
    rows = []
    for activation, group in frame.groupby("activation"):
        spurious = group[group["spurious"]]
        row = _rate_row({"activation": activation}, len(spurious), len(group))
        row["spurious_with_dead_neurons"] = int((spurious["n_dead_neurons"] > 0).sum())
        row["spurious_all_inactive"] = int((spurious["n_dead_neurons"] == spurious["width"]).sum())
        row["unresolved"] = int(group["unresolved"].sum())
        row["unresolved_width_1"] = int(group.loc[group["width"] == 1, "unresolved"].sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    parts = []
    for row in table.itertuples():
        part = f"{row.activation}: {row.count} of {row.total} runs at certified spurious local minima ({_percent(row)})"
        if activation_from_settings(str(row.activation), 0.0).has_kink:
            part += (
                f", {row.spurious_with_dead_neurons} of them with dead neurons and {row.spurious_all_inactive} with "
                "every neuron inactive"
            )
        part += f"; {row.unresolved} runs had no resolved limit within the step budget"
        if not activation_from_settings(str(row.activation), 0.0).has_kink:
            part += (
                f" ({row.unresolved_width_1} of them at width 1, where a (w x + b)^2 never equals an affine map and "
                "the loss only tends to 0 as the bias grows)"
            )
        parts.append(part)
    reading = (
        "Cheridito, Jentzen and Rossmannek prove that leaky ReLU and the quadratic activation have no spurious local "
        "minima for an affine target and that every spurious local minimum of ReLU has dead neurons (with a "
        "constant realisation, so every neuron is inactive). Measured on the exact population loss: "
        + "; ".join(parts)
        + "."
    )
    claim = "Leaky ReLU and quadratic: no spurious local minima; ReLU: every spurious local minimum has dead neurons."
    return Reproduction("Cheridito, Jentzen & Rossmannek, J. Nonlinear Sci. 2022", claim, table, reading)


def saddle_to_saddle(dataset: xr.Dataset) -> Reproduction:
    """Plateaus, escape-neuron consistency and non-differentiable end points after vanishing init."""
    frame = run_frame(dataset, ["n_plateaus", "end_differentiable"], by=["input_dim", "output_dim"])
    plateau = run_arrays(dataset, ["plateau_n_grew", "plateau_n_grew_predicted"])
    grew = np.where(plateau["plateau_n_grew"] > 0, plateau["plateau_n_grew"], 0).sum(axis=1)
    predicted = np.where(plateau["plateau_n_grew_predicted"] > 0, plateau["plateau_n_grew_predicted"], 0).sum(axis=1)
    frame["grew"], frame["grew_predicted"] = grew, predicted
    rows = []
    for (input_dim, output_dim), group in frame.groupby(["input_dim", "output_dim"]):
        row = _rate_row(
            {"input_dim": int(input_dim), "output_dim": int(output_dim), "mean_plateaus": group["n_plateaus"].mean()},
            int((~group["end_differentiable"].astype(bool)).sum()),
            len(group),
        )
        row["grown_neurons"] = int(group["grew"].sum())
        row["grown_and_predicted"] = int(group["grew_predicted"].sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    total_grew, total_predicted = int(table["grown_neurons"].sum()), int(table["grown_and_predicted"].sum())
    low, high = wilson_interval(total_predicted, total_grew)
    reading = (
        "Wu, Şimşek and Ged describe training from vanishing initialisation as a sequence of plateaus near "
        "saddles, left when escape neurons grow, often ending at non-differentiable points. Measured: "
        + "; ".join(
            f"d = {row.input_dim}, k = {row.output_dim}: {row.mean_plateaus:.1f} plateaus per run, "
            f"{_percent(row)} of end points non-differentiable"
            for row in table.itertuples()
        )
        + f". Of the neurons that grew after a plateau, {total_predicted} of {total_grew} "
        f"({100 * total_predicted / max(total_grew, 1):.1f}% [{100 * low:.1f}, {100 * high:.1f}]) were predicted "
        "escape neurons at that plateau."
    )
    claim = "Plateaus are saddles left through escape neurons; visited stationary points are non-differentiable."
    return Reproduction("Wu, Şimşek & Ged, ICLR 2025", claim, table, reading)


def genuine_rate(dataset: xr.Dataset) -> Reproduction:
    """Closed-form genuine-cell rate vs Monte Carlo, and the cells of GD's differentiable minima."""
    n_values = sorted({int(n) for n in np.unique(dataset["n_samples"].values)})
    table = genuine_rate_table(n_values, 20_000, np.random.default_rng(0), cell="middle")
    counts = check_end_points(dataset)
    reading = (
        "Bo Liu's cell analysis: a differentiable local minimum exists in an activation cell iff the cell's "
        "least-squares fit is genuine; for 1-d Gaussian data and noise labels the middle-gap rate is about 0.5/n. "
        + "; ".join(
            f"n = {row.n}: measured {100 * row.rate:.2f}% [{100 * row.ci_low:.2f}, {100 * row.ci_high:.2f}] vs "
            f"closed form {100 * row.closed_form:.2f}%"
            for row in table.itertuples()
        )
        + f". Of {counts['differentiable_minima']} differentiable minima reached by gradient descent, "
        f"{counts['genuine']} lie in genuine cells and {counts['not_genuine']} do not."
    )
    claim = "Differentiable local minima are exactly the genuine cell minima; their rate decays like 0.5/n."
    return Reproduction("Liu, arXiv 2002.04763 / 2006.09192 (closed form: theory.md 10)", claim, table, reading)


REPRODUCTIONS: dict[str, Callable[[xr.Dataset], Reproduction]] = {
    "safran_shamir": safran_shamir,
    "safran_shamir_cluster": safran_shamir,
    "cjr_affine": cheridito_jentzen_rossmannek,
    "saddle_to_saddle": saddle_to_saddle,
    "genuine_rate": genuine_rate,
}
"""Survey name -> the comparison its report includes."""


def reproduction_for(dataset: xr.Dataset) -> Reproduction | None:
    """The comparison for the store's survey, or None if it is not a reproduction survey."""
    function = REPRODUCTIONS.get(str(dataset.attrs.get("survey", "")))
    return function(dataset) if function is not None else None

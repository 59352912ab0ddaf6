"""Figures of a survey (matplotlib, object-oriented API on the Agg canvas; saved as PNG and SVG).

Rate figures draw tidy tables from :mod:`analysis.query` (so they plot exactly what the CSV files
hold); trajectory figures read a handful of runs from the store (``dataset.isel(run=...)``), never
the whole of a per-checkpoint or parameter array.

* :func:`rates_figure` -- rates versus a setting, with 95% interval bars;
* :func:`stacked_figure` -- stacked bars of exclusive categories (stationary-point types, saddle
  mechanisms) per setting value;
* :func:`count_figure` -- histogram of a per-run count (escape neurons) per setting value;
* :func:`loss_curves_figure` -- loss curves of sampled runs, log-log, detected plateaus shaded;
* :func:`amplitude_figure` -- neuron amplitudes ``||w_j|| ||a_j||`` around the plateaus of sampled runs;
* :func:`directions_figure` -- for 2-D inputs, the neurons at the end point with the data's kink lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.runs import grid_axes, run_frame, stored_survey
from analysis.stats import trend_scale
from pipeline.batch import run_inputs
from pipeline.stationary import labels
from pipeline.survey.plan import make_plan, run_settings

__all__ = [
    "amplitude_figure",
    "count_figure",
    "directions_figure",
    "directions_run",
    "loss_curves_figure",
    "rates_figure",
    "sample_runs",
    "save_figure",
    "stacked_figure",
]

FORMATS = ("png", "svg")
ROLE_COLORS = {
    "active_smooth": "tab:blue",
    "active_kinked": "tab:orange",
    "dead": "tab:gray",
    "dead_touching": "tab:brown",
    "zero_output": "tab:purple",
    "zero_input": "tab:pink",
    "zero": "black",
}


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A figure on the Agg canvas (no pyplot state, safe in threads and headless)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, stem: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` (no timestamps in the files); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for extension in formats:
        path = stem.with_suffix(f".{extension}")
        metadata = {"Date": None} if extension == "svg" else {"Software": None}
        figure.savefig(path, dpi=120, metadata=metadata)
        paths.append(path)
    return paths


def _positions(values: np.ndarray) -> tuple[np.ndarray, str, list[str]]:
    """x positions of setting values: the values (log axis for positive spans >= 10x) or their ranks."""
    if values.dtype.kind in "iuf" and np.isfinite(values.astype(float)).all():
        numbers = values.astype(float)
        log = trend_scale(numbers) != "linear" and numbers.max() / numbers.min() >= 4
        return numbers, "log" if log else "linear", []
    return np.arange(len(values), dtype=float), "linear", [str(value) for value in values]


def _set_x(axes: Axes, setting: str, values: np.ndarray, scale: str, ticklabels: list[str]) -> None:
    axes.set_xscale(scale)
    axes.set_xticks(values, ticklabels or [f"{value:g}" for value in values])
    axes.minorticks_off()
    axes.set_xlabel(setting)


def rates_figure(table: pd.DataFrame, setting: str, title: str, which: Sequence[str] | None = None) -> Figure:
    """Rates versus ``setting``, one line per label, with 95% interval bars.

    Parameters
    ----------
    table
        A tidy table grouped by ``[setting]`` (columns ``setting, label, rate, ci_low, ci_high``).
    setting
        The x axis.
    title
        Axes title.
    which
        Labels to draw (default: every label that is non-zero somewhere).
    """
    figure = new_figure()
    axes = figure.add_subplot()
    values = table[setting].drop_duplicates().to_numpy()
    x, scale, ticklabels = _positions(values)
    if which is None:
        which = [label for label, part in table.groupby("label", sort=False) if part["count"].sum() > 0]
    for i, label in enumerate(which):
        part = table[table["label"] == label].set_index(setting).reindex(values)
        offset = (i - (len(which) - 1) / 2) * 0.03
        xs = x * 10**offset if scale == "log" else x + offset * (np.ptp(x) or 1.0)
        rate = part["rate"].to_numpy(dtype=float)
        error = np.vstack([rate - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - rate])
        axes.errorbar(xs, rate, yerr=np.clip(error, 0, None), marker="o", capsize=3, label=str(label))
    _set_x(axes, setting, x, scale, ticklabels)
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel("fraction of runs (95% Wilson interval)")
    axes.set_title(title)
    if which:
        axes.legend(fontsize="small", loc="best")
    return figure


def stacked_figure(table: pd.DataFrame, setting: str, title: str, ylabel: str = "fraction of runs") -> Figure:
    """Stacked bars of exclusive categories (rates summing to one) per value of ``setting``.

    Raises
    ------
    ValueError
        For an empty table: the report says so in a sentence instead of drawing an empty frame.
    """
    if table.empty:
        raise ValueError(f"{title}: no rows to draw")
    figure = new_figure()
    axes = figure.add_subplot()
    values = table[setting].drop_duplicates().to_numpy()
    positions = np.arange(len(values))
    bottom = np.zeros(len(values))
    for label, part in table.groupby("label", sort=False):
        rate = part.set_index(setting).reindex(values)["rate"].fillna(0).to_numpy(dtype=float)
        if not rate.any():
            continue
        axes.bar(positions, rate, bottom=bottom, label=str(label), width=0.6)
        bottom += rate
    totals = table.drop_duplicates(setting).set_index(setting).reindex(values)["total"].to_numpy()
    axes.set_xticks(positions, [f"{value}\n(n={int(total)})" for value, total in zip(values, totals, strict=True)])
    axes.set_xlabel(setting)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def count_figure(table: pd.DataFrame, setting: str, title: str, xlabel: str) -> Figure:
    """Histogram of a per-run count (a :func:`analysis.query.count_table`), bars side by side per setting value."""
    figure = new_figure()
    axes = figure.add_subplot()
    values = table[setting].drop_duplicates().to_numpy()
    ks = np.sort(table["label"].drop_duplicates().to_numpy().astype(int))
    width = 0.8 / max(len(values), 1)
    for i, value in enumerate(values):
        part = table[table[setting] == value].set_index("label").reindex(ks)
        rate = part["rate"].to_numpy(dtype=float)
        error = np.vstack([rate - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - rate])
        axes.bar(
            ks + (i - (len(values) - 1) / 2) * width,
            rate,
            width=width,
            yerr=np.clip(error, 0, None),
            capsize=2,
            label=f"{setting}={value}",
        )
    axes.set_xticks(ks)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of runs (95% Wilson interval)")
    axes.set_ylim(0, 1.05)
    axes.set_title(title)
    axes.legend(fontsize="small")
    return figure


def sample_runs(dataset: xr.Dataset, n: int = 6, *, with_plateaus: bool = True, seed: int = 0) -> np.ndarray:
    """Up to ``n`` run indices (positions), spread over the grid cells, preferring runs with plateaus.

    Only ``n_plateaus`` and the grid-axis coordinates are read.
    """
    axes = grid_axes(dataset)
    frame = run_frame(dataset, ["n_plateaus"], axes)
    rng = np.random.default_rng(seed)
    candidates = frame[frame["n_plateaus"] > 0] if with_plateaus and (frame["n_plateaus"] > 0).any() else frame
    if axes:
        groups = [rng.permutation(part.index.to_numpy()) for _, part in candidates.groupby(axes, dropna=False)]
    else:
        groups = [rng.permutation(candidates.index.to_numpy())]
    chosen: list[int] = []
    for round_ in range(max((len(group) for group in groups), default=0)):
        chosen.extend(int(group[round_]) for group in groups if len(group) > round_)
    return np.sort(np.array(chosen[:n], dtype=int))


def _run_label(sample: xr.Dataset, i: int, settings: Sequence[str]) -> str:
    parts = [
        f"{name}={sample[name].values[i]:g}"
        if np.asarray(sample[name].values).dtype.kind in "iuf"
        else f"{name}={sample[name].values[i]}"
        for name in settings
    ]
    return f"run {int(sample['run'].values[i])}" + (f" ({', '.join(parts)})" if parts else "")


def _plateau_spans(sample: xr.Dataset, i: int) -> list[tuple[float, float]]:
    starts, ends = sample["plateau_start"].values[i], sample["plateau_end"].values[i]
    return [(max(float(s), 1.0), float(e)) for s, e in zip(starts, ends, strict=True) if s >= 0 and e > s]


def loss_curves_figure(dataset: xr.Dataset, runs: Sequence[int]) -> Figure:
    """Loss versus step (log-log) for the runs at positions ``runs``; detected plateaus shaded."""
    figure = new_figure(7.0, 4.5)
    axes = figure.add_subplot()
    variables = ["checkpoint_step", "checkpoint_loss", "plateau_start", "plateau_end"]
    sample = dataset[variables].isel(run=list(runs)).compute()
    settings = grid_axes(dataset)
    colors = [f"C{k % 10}" for k in range(len(runs))]
    for i, color in enumerate(colors):
        step = sample["checkpoint_step"].values[i].astype(float)
        loss = sample["checkpoint_loss"].values[i]
        ok = (step > 0) & np.isfinite(loss) & (loss > 0)
        axes.plot(step[ok], loss[ok], marker=".", color=color, label=_run_label(sample, i, settings))
        for start, end in _plateau_spans(sample, i):
            axes.axvspan(start, end, color=color, alpha=0.06)
            inside = ok & (step >= start) & (step <= end)
            axes.plot(step[inside], loss[inside], color=color, lw=6, alpha=0.3, solid_capstyle="round")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("gradient step")
    axes.set_ylabel("loss")
    axes.set_title("loss curves of sampled runs (shaded, thick: detected plateaus)")
    if len(runs):
        axes.legend(fontsize="x-small")
    return figure


def amplitude_figure(dataset: xr.Dataset, runs: Sequence[int]) -> Figure:
    """Neuron amplitudes ``||w_j|| ||a_j||`` versus step (log-log), one panel per run, plateaus shaded."""
    runs = list(runs)
    columns = min(2, max(len(runs), 1))
    rows = max(1, -(-len(runs) // columns))
    figure = new_figure(4.0 * columns, 3.0 * rows)
    variables = ["checkpoint_step", "checkpoint_amplitude", "plateau_start", "plateau_end", "width"]
    sample = dataset[variables].isel(run=runs).compute()
    settings = grid_axes(dataset)
    for i in range(len(runs)):
        axes = figure.add_subplot(rows, columns, i + 1)
        step = sample["checkpoint_step"].values[i].astype(float)
        amplitude = sample["checkpoint_amplitude"].values[i]
        for j in range(int(sample["width"].values[i])):
            ok = (step > 0) & np.isfinite(amplitude[:, j]) & (amplitude[:, j] > 0)
            axes.plot(step[ok], amplitude[ok, j], lw=1)
        for start, end in _plateau_spans(sample, i):
            axes.axvspan(start, end, color="gray", alpha=0.2)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(_run_label(sample, i, settings), fontsize="small")
        axes.set_xlabel("step")
        axes.set_ylabel("||w_j|| ||a_j||")
    if not runs:
        figure.add_subplot().text(0.5, 0.5, "no runs", ha="center", va="center")
    figure.suptitle("neuron amplitudes (one line per neuron; gray: plateaus)")
    return figure


def directions_run(dataset: xr.Dataset) -> int | None:
    """Position of a run with 2-D raw inputs to draw, preferring a non-differentiable stationary end point.

    Returns None when no run has ``input_dim == 2``.
    """
    frame = run_frame(dataset, ["end_differentiable", "end_point_type"], ["input_dim"])
    two_d = frame["input_dim"].to_numpy() == 2
    if not two_d.any():
        return None
    stationary = np.isin(
        frame["end_point_type"].to_numpy(),
        [labels.code(labels.POINT_TYPE, name) for name in ("global_min", "spurious_local_min", "local_min", "saddle")],
    )
    kinked = ~frame["end_differentiable"].to_numpy().astype(bool)
    for preference in (two_d & stationary & kinked, two_d & kinked, two_d & stationary, two_d):
        if preference.any():
            return int(np.flatnonzero(preference)[0])
    return None


def _inputs_of_run(dataset: xr.Dataset, position: int) -> np.ndarray:
    """Regenerate the inputs ``x`` (n, d_eff) of the run at ``position`` from the stored survey and seeds."""
    survey = stored_survey(dataset)
    if survey is None:
        raise ValueError("the store has no resolved_survey_json attribute; cannot regenerate the data")
    run = int(dataset["run"].values[position])
    plan = make_plan(survey)
    row = plan.iloc[run]
    if int(row["run"]) != run or int(row["data_key"]) != int(dataset["data_key"].values[position]):
        raise ValueError(f"run {run}: the stored survey's plan does not match the store")
    inputs = run_inputs(run_settings(row), survey.master_seed, int(row["data_seed"]), int(row["init_seed"]))
    return inputs.dataset.x


def directions_figure(dataset: xr.Dataset, position: int, x: np.ndarray | None = None) -> Figure:
    """The neurons of one run's end point and the data's kink lines (2-D raw inputs, with or without bias).

    Left: input space. Data points, and each neuron's kink line ``{x : w_j . (x, 1) = 0}`` with an
    arrow towards its active side; a line through a data point makes the loss non-differentiable.
    Right: the same in direction space (a Hough chart): a neuron is the point ``(theta_j, c_j)``
    with unit normal ``n = (cos theta, sin theta)`` and offset ``c = -b_j / ||w_j||`` of its kink line;
    each data point ``x_i`` is the curve ``c = x_i . n(theta)`` of the kink lines through it. A
    neuron on a curve has that data point on its kink.

    Parameters
    ----------
    dataset
        A survey store; only this run's end point is loaded.
    position
        Position of the run along ``run`` (see :func:`directions_run`).
    x
        The run's inputs ``(n, d_eff)``; regenerated from its seeds when omitted.
    """
    variables = ["end_w", "end_a", "end_roles", "end_escape", "end_kink", "width", "bias", "input_dim"]
    point = dataset[variables].isel(run=position).compute()
    if x is None:
        x = _inputs_of_run(dataset, position)
    bias = bool(point["bias"].values)
    width = int(point["width"].values)
    w = point["end_w"].values[:width, : 2 + int(bias)]
    a = point["end_a"].values[:width]
    roles = np.array([*labels.ROLE, "none"])[point["end_roles"].values[:width].astype(int)]
    escape = point["end_escape"].values[:width].astype(bool)
    kink = point["end_kink"].values[:width].astype(bool)
    data = x[:, :2]
    normal = w[:, :2]
    norm = np.linalg.norm(normal, axis=1)
    offset = np.where(norm > 0, -(w[:, 2] if bias else 0.0) / np.where(norm > 0, norm, 1), np.nan)
    theta = np.arctan2(normal[:, 1], normal[:, 0])
    amplitude = np.linalg.norm(w, axis=1) * np.linalg.norm(a, axis=1)
    size = 30 + 200 * amplitude / (amplitude.max() or 1.0)

    figure = new_figure(11.0, 4.8)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    left.scatter(data[:, 0], data[:, 1], color="black", s=18, zorder=3, label="data")
    span = np.abs(data).max() * 1.3 + 1e-12
    t = np.linspace(-2 * span, 2 * span, 2)
    for j in range(width):
        if norm[j] == 0:
            continue
        color = "red" if escape[j] else ROLE_COLORS.get(roles[j], "tab:gray")
        unit = normal[j] / norm[j]
        foot = unit * offset[j]
        tangent = np.array([-unit[1], unit[0]])
        line = foot[None] + t[:, None] * tangent[None]
        style = "--" if roles[j] in ("dead", "dead_touching") else "-"
        left.plot(
            line[:, 0],
            line[:, 1],
            style,
            color=color,
            lw=2.5 if kink[j] else 1.2,
            label=f"neuron {j}: {roles[j]}{', escape' if escape[j] else ''}{', data on kink' if kink[j] else ''}",
        )
        left.annotate("", xy=foot + 0.25 * span * unit, xytext=foot, arrowprops={"arrowstyle": "->", "color": color})
    left.set_xlim(-span, span)
    left.set_ylim(-span, span)
    left.set_aspect("equal")
    left.set_xlabel("x1")
    left.set_ylabel("x2")
    left.set_title("input space: neuron kink lines (arrow: active side)", fontsize="small")
    left.legend(fontsize="xx-small", loc="upper left")

    grid = np.linspace(-np.pi, np.pi, 361)
    for xi in data:
        right.plot(grid, xi[0] * np.cos(grid) + xi[1] * np.sin(grid), color="0.7", lw=1)
    colors = ["red" if escape[j] else ROLE_COLORS.get(roles[j], "tab:gray") for j in range(width)]
    right.scatter(theta, offset, s=size, c=colors, edgecolors="black", zorder=3)
    for j in range(width):
        if np.isfinite(offset[j]):
            right.annotate(str(j), (theta[j], offset[j]), textcoords="offset points", xytext=(5, 5), fontsize="small")
    right.set_xlim(-np.pi, np.pi)
    right.set_xlabel("kink-line normal angle theta_j (rad)")
    right.set_ylabel("kink-line offset c_j = -b_j/||w_j||" if bias else "offset (0 without bias)")
    right.set_title(
        "direction space: grey curve = kink lines through a data point;\n"
        "neuron on a curve = data on its kink (marker size: amplitude)",
        fontsize="small",
    )
    figure.suptitle(f"end point of run {int(dataset['run'].values[position])}")
    return figure

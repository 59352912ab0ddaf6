"""The report's trajectory sections: loss curves of sampled runs, neuron amplitudes around plateaus, and the
kink lines of one end point.

Every figure is drawn only when it informs (at least two sampled runs, a run with a plateau, a run with 2-D
inputs); otherwise the section says in one sentence why there is none. Every caption states its n.
"""

from __future__ import annotations

import xarray as xr

from analysis import figures, readings
from analysis.formatting import format_number, format_rate
from analysis.query import count_summary, decode, escape_consistency_table
from analysis.render import Report, Section
from analysis.report_axes import figure_section

__all__ = ["trajectory_sections"]


def trajectory_sections(report: Report, dataset: xr.Dataset) -> list[Section]:
    """Loss curves, neuron amplitudes around plateaus, and the kink lines of one end point."""
    sections = [Section("Trajectories")]
    runs = [int(run) for run in figures.sample_runs(dataset, 6)]
    row = count_summary(dataset, "n_plateaus").iloc[0]
    with_plateau = int((dataset["n_plateaus"].isel(run=list(runs)).values > 0).sum()) if len(runs) else 0
    reading = (
        f"{len(runs)} runs sampled across the grid cells, {with_plateau} of them with a detected plateau (shaded; a"
        " plateau is a stretch of steps with a small gradient, near a stationary point). In the whole survey"
        f" {format_rate(row['rate'], row['ci_low'], row['ci_high'])} of runs {readings.PHRASES['plateau']}, with"
        f" {format_number(row['mean'])} plateaus per run on average."
    )
    if len(runs) < 2:
        sections.append(Section("Loss curves and plateaus", reading, level=3))
    else:
        caption = f"Loss against step of sampled runs, detected plateaus shaded; n = {len(runs)} runs"
        draw = figures.loss_curves_figure(dataset, runs)
        sections.append(figure_section(report, "Loss curves and plateaus", "loss_curves", draw, reading, caption))
    if with_plateau:
        shown = [run for run in runs if dataset["n_plateaus"].values[run] > 0][:4]
        caption = f"Neuron amplitudes ||w_j|| ||a_j|| against step, plateaus in gray; n = {len(shown)} runs"
        draw = figures.amplitude_figure(dataset, shown)
        reading = "Each panel shows the amplitude of every neuron of one sampled run with a plateau. " + (
            readings.consistency_reading(escape_consistency_table(dataset))
        )
        sections.append(
            figure_section(report, "Neuron amplitudes around plateaus", "amplitudes", draw, reading, caption)
        )
    sections.append(_directions_section(report, dataset))
    return sections


def _directions_section(report: Report, dataset: xr.Dataset) -> Section:
    title = "Neurons and kink lines"
    position = figures.directions_run(dataset)
    if position is None:
        return Section(title, "No run has 2-D inputs, so there is no picture of the kink lines.", level=3)
    try:
        figure = figures.directions_figure(dataset, position)
    except ValueError as error:
        return Section(title, f"Not drawn: {error}.", level=3)
    run = int(dataset["run"].values[position])
    caption = f"The neurons of one end point (run `{run}`) and the data's kink lines; n = 1 run"
    return figure_section(report, title, "directions", figure, _directions_reading(dataset, position), caption)


def _directions_reading(dataset: xr.Dataset, position: int) -> str:
    point = (
        dataset[["end_point_type", "end_differentiable", "n_kink_neurons", "n_escape_neurons", "width"]]
        .isel(run=position)
        .compute()
    )
    kind = str(decode(point["end_point_type"])).replace("_", " ")
    differentiable = bool(point["end_differentiable"].values)
    return (
        f"Run `{int(dataset['run'].values[position])}` (width {int(point['width'].values)}) ended at a point of type"
        f" '{kind}', where the loss is {'' if differentiable else 'not '}differentiable:"
        f" {int(point['n_kink_neurons'].values)} neuron(s) have data points exactly on their kink line and"
        f" {int(point['n_escape_neurons'].values)} are escape neurons. Left: each neuron's kink line in input space;"
        " a line through a data point is what makes the stationary point non-differentiable. Right: the same neurons"
        " as points (angle, offset of the kink line) and every data point as the curve of the kink lines through it;"
        " a neuron sitting on a curve has that data point on its kink."
    )

"""Network embedding in the report (theory.md 7): what embedding does to local minima and saddles, and how
many end points of width ``m + 1`` embed narrower networks.

Two questions, one table each:

* :func:`embedding_table`: every certified end point embedded into width ``m + 1`` (``classify.embeddings``;
  :mod:`pipeline.stationary.embedding`), grouped by the end point's type, the kind of embedding and the set of
  types the theorem predicts; the classifier's verdicts counted, and the share inside the predicted set with its
  95% Wilson interval. :func:`embedding_mismatches` lists every embedding whose verdict lies outside its
  predicted set (the theorem and the classifier disagree, or the classifier could not decide).
* :func:`reduced_width_table`: per width, the end points that embed a narrower network (``end_reduced_width``,
  :mod:`pipeline.stationary.groups`): by dropped (zero or dead) neurons, by merged groups (split neurons), and
  those whose loss equals that of an end point one neuron narrower on the same data set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.formatting import format_count, format_rate, readable
from analysis.render import Report, Section
from analysis.runs import run_frame
from analysis.stats import wilson_interval
from pipeline.stationary import labels
from pipeline.stationary.embedding import CERTIFIED

__all__ = [
    "embedding_mismatches",
    "embedding_section",
    "embedding_table",
    "has_embeddings",
    "reduced_width_table",
]

SAME_LOSS = 1e-6
"""Two end points on one data set have the same loss when they differ by at most this relative amount."""
OBSERVED = {
    "global min": ("global_min",),
    "local min": ("spurious_local_min", "local_min"),
    "saddle": ("saddle",),
    "not stationary": ("not_stationary",),
    "undetermined": ("undetermined", "non_finite"),
}
"""Columns of the observed verdicts: the classifier's point types, local minima pooled."""
SOURCE = {"global_min": "global min (zero loss)", "spurious_local_min": "local min (loss > 0)"}
SOURCE.update({"local_min": SOURCE["spurious_local_min"], "saddle": "saddle"})
SHOWN_MISMATCHES = 30
WIDTH_NAMES = {
    "n": "certified end points",
    "narrower": "embed a narrower network",
    "one_less": "reduced width m - 1",
    "dropped": "by a dropped neuron",
    "merged": "by a merged group",
    "matches_narrower": "loss of a width m - 1 end point",
}
"""Headers of the reduced-width table (``m``: the row's width)."""


def has_embeddings(dataset: xr.Dataset) -> bool:
    """The store holds the embeddings of its end points (the survey set ``classify.embeddings``)."""
    return "embedding_point_type" in dataset


def _embedding_frame(dataset: xr.Dataset) -> pd.DataFrame:
    """One row per built embedding: run, original type, embedding class and label, predicted set, verdict."""
    kind = dataset["embedding_kind"].values
    runs, slots = np.nonzero(kind >= 0)
    source = dataset["embedding_source_type"].values[runs]
    beta = dataset["embedding_beta"].values[runs, slots]
    neuron = dataset["embedding_neuron"].values[runs, slots]
    names = np.array(labels.EMBEDDING_KIND)[kind[runs, slots]]
    classes = np.select(
        [names == "E1_zero", names == "E1_dead", names == "E2", (beta < 0) | (beta > 1), (beta == 0) | (beta == 1)],
        ["E1 zero neuron", "E1 dead neuron", "E2 zero-input neuron", "E3 beta outside [0, 1]", "E3 beta in {0, 1}"],
        "E3 beta in (0, 1)",
    )
    stationarity = dataset["end_stationarity"].values[runs]
    predicted = dataset["embedding_predicted"].values[runs, slots].astype(np.int64)
    observed = dataset["embedding_point_type"].values[runs, slots]
    return pd.DataFrame(
        {
            "run": dataset["run"].values[runs],
            "original": [SOURCE[labels.POINT_TYPE[code]] for code in source],
            "embedding": classes,
            "label": [
                name if j < 0 else f"E3 neuron {j} beta {b:g}" for name, j, b in zip(names, neuron, beta, strict=True)
            ],
            "predicted": [_type_set(bits) for bits in predicted],
            "observed": [labels.POINT_TYPE[code] for code in observed],
            "stationarity": [labels.STATIONARITY[code] for code in stationarity],
            "agrees": (predicted >> observed) & 1 == 1,
            "has_prediction": predicted != 0,
        }
    )


def _type_set(bits: int) -> str:
    """A predicted set of point types in words (``no prediction`` for the empty set)."""
    names = [name for code, name in enumerate(labels.POINT_TYPE) if bits >> code & 1]
    return " or ".join(names) if names else "no prediction"


def embedding_table(dataset: xr.Dataset) -> pd.DataFrame:
    """What embedding does to the end points: verdict counts and agreement with the theorem.

    Returns
    -------
    pandas.DataFrame
        One row per (original type, embedding class, predicted set): ``n`` embeddings, one count column per
        :data:`OBSERVED` verdict, ``agree`` (verdict inside the predicted set) and its ``rate`` with
        ``ci_low``/``ci_high`` (95% Wilson; NaN without a prediction).
    """
    frame = _embedding_frame(dataset)
    rows = []
    for (original, embedding, predicted), group in frame.groupby(["original", "embedding", "predicted"], sort=True):
        row: dict[str, object] = {"original": original, "embedding": embedding, "predicted": predicted, "n": len(group)}
        row.update({column: int(group["observed"].isin(names).sum()) for column, names in OBSERVED.items()})
        agree = int(group["agrees"].sum())
        low, high = wilson_interval(agree, len(group)) if predicted != "no prediction" else (np.nan, np.nan)
        rate = agree / len(group) if predicted != "no prediction" else np.nan
        rows.append({**row, "agree": agree, "rate": rate, "ci_low": low, "ci_high": high})
    columns = ["original", "embedding", "predicted", "n", *OBSERVED, "agree", "rate", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


def embedding_mismatches(dataset: xr.Dataset) -> pd.DataFrame:
    """Every embedding whose verdict is outside the predicted set.

    Columns: run, embedding label, original type, the original end point's ``stationarity`` (the theorem
    assumes an exactly stationary point; ``approx_stationary`` ones meet it only to the relaxed tolerance),
    predicted set and verdict.
    """
    frame = _embedding_frame(dataset)
    wrong = frame[frame["has_prediction"] & ~frame["agrees"]]
    return wrong[["run", "label", "original", "stationarity", "predicted", "observed"]].reset_index(drop=True)


def reduced_width_table(dataset: xr.Dataset) -> pd.DataFrame:
    """Per width: certified end points that embed a narrower network, and how.

    Returns
    -------
    pandas.DataFrame
        Per ``width``: ``n`` certified end points (sampled data); ``narrower`` (``end_reduced_width < width``)
        with its ``rate`` and Wilson interval; ``one_less`` (reduced width ``width - 1``); ``dropped`` (a zero or
        dead neuron, E1/E2 reversed), ``merged`` (a group of two or more neurons, E3 reversed); and
        ``matches_narrower``: reduced width at most ``width - 1`` and the loss of an end point of width
        ``width - 1`` on the same data set (``data_key``, ``data_seed``) to :data:`SAME_LOSS` (NaN where the
        survey has no such width).
    """
    frame = run_frame(dataset, ["end_reduced_width", "end_point_type", "end_loss"], ["width", "data_key", "data_seed"])
    group = dataset["end_neuron_group"].values
    within = np.arange(group.shape[1])[None] < frame["width"].to_numpy()[:, None]
    frame["dropped"] = ((group == -1) & within).any(axis=1)
    ids = np.where(group >= 0, group, group.shape[1]).astype(np.int64)
    counts = np.stack([np.bincount(row, minlength=group.shape[1] + 1)[:-1] for row in ids])
    frame["merged"] = (counts >= 2).any(axis=1)
    certified = np.isin(frame["end_point_type"], [labels.code(labels.POINT_TYPE, name) for name in CERTIFIED])
    frame = frame[certified & (frame["end_reduced_width"] >= 0)]
    rows = []
    for width, cell in frame.groupby("width", sort=True):
        narrower = cell["end_reduced_width"] < width
        n, count = len(cell), int(narrower.sum())
        low, high = wilson_interval(count, n)
        rows.append(
            {
                "width": int(width),
                "n": n,
                "narrower": count,
                "rate": count / n,
                "ci_low": low,
                "ci_high": high,
                "one_less": int((cell["end_reduced_width"] == width - 1).sum()),
                "dropped": int((narrower & cell["dropped"]).sum()),
                "merged": int((narrower & cell["merged"]).sum()),
                "matches_narrower": _matches(cell[narrower], frame[frame["width"] == width - 1]),
            }
        )
    return pd.DataFrame(rows)


def _matches(wide: pd.DataFrame, narrow: pd.DataFrame) -> float:
    """End points of ``wide`` with the loss of an end point of ``narrow`` on the same data set (NaN: no narrow)."""
    if narrow.empty:
        return np.nan
    found = 0
    losses = narrow.groupby(["data_key", "data_seed"])["end_loss"].apply(np.asarray).to_dict()
    for key, loss in zip(zip(wide["data_key"], wide["data_seed"], strict=True), wide["end_loss"], strict=True):
        others = losses.get(key, np.empty(0))
        found += bool((np.abs(others - loss) <= SAME_LOSS * np.maximum(np.abs(loss), 1e-300)).any())
    return float(found)


def _mismatch_sentence(mismatches: pd.DataFrame) -> str:
    """How many embeddings disagree, how many of those the classifier left undecided, and where they come from."""
    undecided = int((mismatches["observed"] == "undetermined").sum())
    approximate = int((mismatches["stationarity"] != "stationary").sum())
    return (
        f" {format_count(len(mismatches))} embeddings disagree: {format_count(undecided)} of them are `undetermined`"
        f" (no certificate either way) and {format_count(len(mismatches) - undecided)} have a certified verdict"
        f" outside the predicted set; {format_count(approximate)} of the {format_count(len(mismatches))} embed an"
        " end point that is stationary only to the relaxed tolerance (`approx_stationary`), where the theorem's"
        f" hypothesis holds approximately. The first {min(len(mismatches), SHOWN_MISMATCHES)} are listed below"
        " (all in tables/embedding_mismatches.csv)."
    )


def embedding_section(report: Report, dataset: xr.Dataset) -> Section:
    """The report section: the embedding table, the mismatches, the reduced-width table."""
    table = embedding_table(dataset)
    shown = report.table("embeddings", table, "what embedding into width m + 1 does to the end points")
    mismatches = embedding_mismatches(dataset)
    report.table("embedding_mismatches", mismatches, "embeddings whose verdict is outside the predicted set", rates=())
    widths = reduced_width_table(dataset)
    widths_shown = report.table(
        "reduced_width",
        widths,
        "end points that embed a narrower network, by width",
        readable(widths, names=WIDTH_NAMES),
    )
    predicted = table[table["predicted"] != "no prediction"]
    agree, total = int(predicted["agree"].sum()), int(predicted["n"].sum())
    low, high = wilson_interval(agree, total) if total else (np.nan, np.nan)
    reading = (
        "**What does embedding into width m + 1 do to local minima and saddles?** Every certified end point was"
        " embedded by adding a zero neuron (E1), a dead ReLU neuron with zero output weight (E1), a zero-input"
        " neuron (E2), and by splitting each neuron with each ratio beta (E3); theory.md 7 predicts the set of"
        " types each embedding may have (from the end point's type, whether the split neuron uses a kink and"
        " whether the point has escape neurons). "
        + (
            f"The classifier's verdict lies in the predicted set for {format_count(agree)} of {format_count(total)}"
            f" embeddings with a prediction ({format_rate(agree / total, low, high)})."
            if total
            else "No embedding has a prediction."
        )
        + (_mismatch_sentence(mismatches) if len(mismatches) else " No embedding disagrees.")
        + "\n\n**How many end points of width m + 1 embed a narrower network?** Neurons with the same direction and"
        " activation pattern are merged and zero or dead ones dropped (`end_reduced_width`); 'matches' counts end"
        " points of reduced width at most m whose loss equals that of an end point of width m on the same data set"
        f" (relative {SAME_LOSS:g})."
    )
    tables = [shown, readable(mismatches.head(SHOWN_MISMATCHES), ()), widths_shown]
    ids = ["embeddings", "embedding_mismatches", "reduced_width"]
    keep = [index for index in range(3) if index != 1 or len(mismatches)]
    return Section(
        "Network embedding (theory.md 7)",
        reading,
        tables=[tables[index] for index in keep],
        table_ids=[ids[index] for index in keep],
    )

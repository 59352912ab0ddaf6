"""The embedding tables and report section (analysis.embeddings) on a hand-made store with counts known by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from analysis.embeddings import embedding_mismatches, embedding_section, embedding_table, reduced_width_table
from analysis.render import Report, render_markdown
from pipeline.stationary import labels

GLOBAL, SPURIOUS, SADDLE, UNDETERMINED, NOT_STATIONARY = (
    labels.code(labels.POINT_TYPE, name)
    for name in ("global_min", "spurious_local_min", "saddle", "undetermined", "not_stationary")
)


def _bits(*codes: int) -> int:
    return sum(1 << code for code in codes)


def hand_made() -> xr.Dataset:
    """Four runs; slots E1_zero, E1_dead, E2, E3 (neuron 0, beta 0.5).

    run 0 (width 1, spurious): predictions saddle, spurious, spurious|not stationary, spurious; verdicts saddle,
    spurious, not stationary, saddle (the E3 verdict is a mismatch). run 1 (width 1, saddle): all saddle. run 2
    (width 2, undetermined): nothing built. run 3 (width 2, zero-loss global; E1_dead not built): all global.
    """
    kind = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [-1, -1, -1, -1], [0, -1, 2, 3]])
    predicted = np.array(
        [
            [_bits(SADDLE), _bits(SPURIOUS), _bits(SPURIOUS, NOT_STATIONARY), _bits(SPURIOUS)],
            [_bits(SADDLE), _bits(SADDLE), _bits(SADDLE, NOT_STATIONARY), _bits(SADDLE)],
            [-1, -1, -1, -1],
            [_bits(GLOBAL), -1, _bits(GLOBAL), _bits(GLOBAL)],
        ]
    )
    observed = np.array(
        [[SADDLE, SPURIOUS, NOT_STATIONARY, SADDLE], [SADDLE] * 4, [-1] * 4, [GLOBAL, -1, GLOBAL, GLOBAL]]
    )
    run, emb, neuron = ("run",), ("run", "embedding"), ("run", "neuron")
    return xr.Dataset(
        {
            "embedding_source_type": (run, np.array([SPURIOUS, SADDLE, -1, GLOBAL], np.int8)),
            "embedding_kind": (emb, kind.astype(np.int8)),
            "embedding_neuron": (emb, np.where(kind == 3, 0, -1).astype(np.int16)),
            "embedding_beta": (emb, np.where(kind == 3, 0.5, np.nan)),
            "embedding_predicted": (emb, predicted.astype(np.int8)),
            "embedding_point_type": (emb, observed.astype(np.int8)),
            "end_point_type": (run, np.array([SPURIOUS, SADDLE, UNDETERMINED, GLOBAL], np.int8)),
            "end_reduced_width": (run, np.array([1, 1, 1, 1], np.int16)),
            "end_neuron_group": (neuron, np.array([[0, -1], [0, -1], [0, 0], [0, 0]], np.int16)),
            "end_loss": (run, np.array([0.5, 0.7, 0.1, 0.7])),
            "end_stationarity": (run, np.array([1, 0, 3, 1], np.int8)),  # approx, stationary, not, approx
        },
        coords={
            "run": np.arange(4),
            "width": (run, np.array([1, 1, 2, 2])),
            "data_key": (run, np.array([5, 5, 5, 5])),
            "data_seed": (run, np.array([0, 1, 0, 1])),
        },
    )


def test_embedding_table_counts_and_agreement() -> None:
    table = embedding_table(hand_made()).set_index(["original", "embedding"])
    assert table["n"].sum() == 11  # 4 + 4 + 0 + 3 built embeddings
    e3 = table.loc[("local min (loss > 0)", "E3 beta in (0, 1)")]
    assert (e3["predicted"], e3["n"], e3["saddle"], e3["agree"], e3["rate"]) == ("spurious_local_min", 1, 1, 0, 0.0)
    e2 = table.loc[("local min (loss > 0)", "E2 zero-input neuron")]
    assert (e2["not stationary"], e2["agree"], e2["rate"]) == (1, 1, 1.0)
    assert 0 < e2["ci_low"] < 1 and e2["ci_high"] == 1.0
    saddles = table.loc["saddle"]
    assert saddles["n"].sum() == 4 and saddles["agree"].sum() == 4
    assert table.loc[("global min (zero loss)", "E1 zero neuron"), "global min"] == 1


def test_mismatches_are_listed() -> None:
    wrong = embedding_mismatches(hand_made())
    assert wrong.to_dict("records") == [
        {
            "run": 0,
            "label": "E3 neuron 0 beta 0.5",
            "original": "local min (loss > 0)",
            "stationarity": "approx_stationary",
            "predicted": "spurious_local_min",
            "observed": "saddle",
        }
    ]


def test_reduced_width_by_width() -> None:
    table = reduced_width_table(hand_made()).set_index("width")
    assert table.loc[1, ["n", "narrower", "one_less", "dropped", "merged"]].tolist() == [2, 0, 0, 0, 0]
    assert np.isnan(table.loc[1, "matches_narrower"])  # no width 0
    assert table.loc[2, ["n", "narrower", "one_less", "dropped", "merged", "matches_narrower"]].tolist() == [
        1, 1, 1, 0, 1, 1.0
    ]  # fmt: skip


def test_the_report_section_renders(tmp_path: Path) -> None:
    report = Report("t", tmp_path)
    section = embedding_section(report, hand_made())
    report.sections.append(section)
    text = render_markdown(report)
    assert "Network embedding" in text and "E3 neuron 0 beta 0.5" in text
    assert "for 10 of 11 embeddings with a prediction" in text
    assert "1 embeddings disagree: 0 of them are `undetermined`" in text and "1 have a certified verdict" in text
    assert "1 of the 1 embed an end point that is stationary only to the relaxed tolerance" in text
    assert section.table_ids == ["embeddings", "embedding_mismatches", "reduced_width"]
    assert {path.name for path in (tmp_path / "tables").iterdir()} == {
        "embeddings.csv", "embedding_mismatches.csv", "reduced_width.csv"
    }  # fmt: skip

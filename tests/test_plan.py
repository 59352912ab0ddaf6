"""The plan: one row per run, seeds from settings (never positions), shards and batches partition it."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.seeds import run_generator, settings_key
from pipeline.survey import SETTING_GROUPS, SETTING_NAMES, Survey, load_survey, parse_survey
from pipeline.survey.plan import (
    DATA_SETTINGS,
    INDEX_COLUMNS,
    INIT_SETTINGS,
    KEY_COLUMNS,
    SETTING_DTYPES,
    batches,
    data_settings,
    init_settings,
    make_plan,
    n_shards,
    run_settings,
    shard_runs,
)

SURVEYS = Path(__file__).resolve().parent.parent / "surveys"
IDENTITY = [*SETTING_NAMES, "data_seed", "init_seed"]


def survey_data(**grid: list[Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "master_seed": 11,
        "seeds": {"data": 2, "init": 3},
        "fixed": {"input_dim": 3, "n_samples": 8, "teacher_width": 2},
        "grid": grid or {"width": [2, 4], "init_scale": [1.0e-6, 1.0]},
        "execution": {"shard_size": 5, "batch_size": 2},
    }


def make(data: dict[str, Any], **execution: int) -> Survey:
    data = copy.deepcopy(data)
    data["execution"] = {**data.get("execution", {}), **execution}
    return parse_survey(data, "p")


def test_plan_rows_columns_and_order() -> None:
    survey = make(survey_data())
    plan = make_plan(survey)
    assert list(plan.columns) == [*INDEX_COLUMNS, *SETTING_NAMES, *KEY_COLUMNS]
    assert len(plan) == survey.n_runs == 24
    np.testing.assert_array_equal(plan["run"], np.arange(24))
    np.testing.assert_array_equal(plan.index, np.arange(24))
    expected = [(c, d, i) for c in range(4) for d in range(2) for i in range(3)]
    assert list(zip(plan["cell"], plan["data_seed"], plan["init_seed"], strict=True)) == expected
    np.testing.assert_array_equal(plan["shard"], np.arange(24) // 5)
    cells = survey.cells()
    for row in plan.itertuples():
        assert row.width == cells[row.cell]["width"] and row.init_scale == cells[row.cell]["init_scale"]
    for name, dtype in SETTING_DTYPES.items():
        assert plan[name].dtype == pd.Series([], dtype=dtype).dtype, name
    assert plan["data_key"].dtype == np.int64 and plan["init_key"].dtype == np.int64
    assert plan.attrs == {"survey": "p", "master_seed": 11, "shard_size": 5, "n_runs": 24}


def test_plan_is_deterministic() -> None:
    data = survey_data()
    pd.testing.assert_frame_equal(make_plan(make(data)), make_plan(make(copy.deepcopy(data))))


def test_keys_are_the_settings_keys_of_the_stream_settings() -> None:
    plan = make_plan(
        make(
            survey_data(width=[2, 4], activation=["relu", "leaky_relu"])
            | {"fixed": {"teacher_width": 2, "init_scale": 0.1, "leak": 0.2}}
        )
    )
    for _, row in plan.iterrows():
        settings_ = run_settings(row)
        assert settings_key(data_settings(settings_)) == row["data_key"]
        assert settings_key(init_settings(settings_)) == row["init_key"]
        assert (settings_["leak"] is None) == (settings_["activation"] == "relu")


def test_run_settings_equals_the_cell() -> None:
    survey = make(
        survey_data(target=["teacher", "random"], input_dim=[2, 3]) | {"fixed": {"teacher_width": 2, "init_scale": 1.0}}
    )
    plan = make_plan(survey)
    cells = survey.cells()
    assert plan["teacher_width"].isna().sum() == len(plan) // 2
    for _, row in plan.iterrows():
        assert run_settings(row) == cells[row["cell"]]


def test_stream_settings_groups() -> None:
    assert set(DATA_SETTINGS) == set(SETTING_GROUPS["data"]) | set(SETTING_GROUPS["target"])
    assert set(INIT_SETTINGS) == set(DATA_SETTINGS) | set(SETTING_GROUPS["student"]) | set(SETTING_GROUPS["init"])
    assert not set(INIT_SETTINGS) & set(SETTING_GROUPS["training"])


def test_runs_sharing_data_settings_share_the_data_key() -> None:
    plan = make_plan(make(survey_data(width=[2, 4], learning_rate=[0.1, 0.01], init_scale=[1.0])))
    assert plan["data_key"].nunique() == 1
    assert plan.groupby("width")["init_key"].nunique().eq(1).all()
    assert plan["init_key"].nunique() == 2  # learning_rate does not enter the init stream


def test_inapplicable_settings_do_not_change_keys() -> None:
    """A relu cell has the same keys whether or not leaky cells (with a fixed leak) sit beside it."""
    relu_only = make_plan(make(survey_data(width=[2]) | {"fixed": {"teacher_width": 2, "init_scale": 1.0}}))
    mixed_data = survey_data(width=[2], activation=["relu", "leaky_relu"])
    mixed_data["fixed"] = {"teacher_width": 2, "init_scale": 1.0, "leak": 0.3}
    mixed = make_plan(make(mixed_data))
    relu_rows = mixed[mixed["activation"] == "relu"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        relu_rows[["data_key", "init_key", "data_seed", "init_seed"]],
        relu_only[["data_key", "init_key", "data_seed", "init_seed"]],
    )


@pytest.mark.parametrize(
    ("axis", "before", "after"),
    [
        ("width", [2, 4], [1, 2, 3, 4]),
        ("init_scale", [1.0e-6, 1.0], [1.0, 1.0e-3, 1.0e-6]),
        ("n_samples", [8], [4, 8]),
    ],
)
def test_adding_a_grid_value_leaves_existing_runs_unchanged(axis: str, before: list, after: list) -> None:
    grid_before = {"width": [2, 4], "init_scale": [1.0e-6, 1.0], axis: before}
    grid_after = {**grid_before, axis: after}
    data_before, data_after = survey_data(**grid_before), survey_data(**grid_after)
    for data in (data_before, data_after):
        data["fixed"] = {k: v for k, v in data["fixed"].items() if k not in data["grid"]}
    old, new = make_plan(make(data_before)), make_plan(make(data_after))
    columns = [*IDENTITY, *KEY_COLUMNS]
    merged = old[columns].merge(new[columns], on=IDENTITY, how="left", suffixes=("", "_new"), indicator=True)
    assert (merged["_merge"] == "both").all()
    for key in KEY_COLUMNS:
        np.testing.assert_array_equal(merged[key], merged[f"{key}_new"])
    assert len(new) > len(old)


def test_generators_depend_on_settings_and_seeds_not_on_position() -> None:
    data = survey_data()
    small, large = make_plan(make(data, shard_size=1)), make_plan(make(data, shard_size=1000))
    assert n_shards(small) == len(small) and n_shards(large) == 1
    for (_, a), (_, b) in zip(small.iterrows(), large.iterrows(), strict=True):
        settings_a, settings_b = run_settings(a), run_settings(b)
        draw_a = run_generator(11, "init", int(a["init_seed"]), init_settings(settings_a)).standard_normal(3)
        draw_b = run_generator(11, "init", int(b["init_seed"]), init_settings(settings_b)).standard_normal(3)
        np.testing.assert_array_equal(draw_a, draw_b)


def _assert_partition(parts: list[pd.DataFrame], plan: pd.DataFrame) -> None:
    runs = np.concatenate([part["run"].to_numpy() for part in parts]) if parts else np.array([], dtype=int)
    np.testing.assert_array_equal(np.sort(runs), plan["run"].to_numpy())
    assert len(np.unique(runs)) == len(runs)


def test_shards_partition_the_plan() -> None:
    plan = make_plan(make(survey_data()))
    assert n_shards(plan) == 5
    shards = [shard_runs(plan, k) for k in range(n_shards(plan))]
    _assert_partition(shards, plan)
    assert [len(s) for s in shards] == [5, 5, 5, 5, 4]
    pd.testing.assert_frame_equal(pd.concat(shards), plan)
    for bad in (-1, 5, 1.0, True):
        with pytest.raises(ValueError, match=r"shard must be an int in \[0, 5\)"):
            shard_runs(plan, bad)  # type: ignore[arg-type]


def test_batches_hold_one_cell_and_partition_the_shard() -> None:
    plan = make_plan(make(survey_data()))
    for k in range(n_shards(plan)):
        shard = shard_runs(plan, k)
        parts = batches(shard, 2)
        _assert_partition(parts, shard)
        for part in parts:
            assert len(part) in (1, 2)
            assert part["cell"].nunique() == 1
            assert part[list(SETTING_NAMES)].astype(str).drop_duplicates().shape[0] == 1
            assert part["run"].is_monotonic_increasing
    first = [list(p["run"]) for p in batches(shard_runs(plan, 1), 2)]
    assert first == [[5], [6, 7], [8, 9]]  # cell 0 holds runs 0..5, cell 1 runs 6..11
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        batches(plan, 0)


def test_batches_are_deterministic_and_ignore_row_order() -> None:
    plan = make_plan(make(survey_data()))
    shuffled = plan.sample(frac=1.0, random_state=3)
    a, b = batches(plan, 4), batches(shuffled, 4)
    assert [list(p["run"]) for p in a] == [list(p["run"]) for p in b]


@settings(max_examples=40, deadline=None)
@given(
    shard_size=st.integers(1, 30),
    batch_size=st.integers(1, 30),
    n_init=st.integers(1, 4),
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True),
)
def test_property_shards_and_batches_partition_and_keep_identity(
    shard_size: int, batch_size: int, n_init: int, widths: list[int]
) -> None:
    data = survey_data(width=widths, init_scale=[1.0, 0.5])
    data["seeds"]["init"] = n_init
    plan = make_plan(make(data, shard_size=shard_size))
    reference = make_plan(make(data, shard_size=1))
    all_batches = [part for k in range(n_shards(plan)) for part in batches(shard_runs(plan, k), batch_size)]
    _assert_partition(all_batches, plan)
    assert all(len(part) <= batch_size and part["cell"].nunique() == 1 for part in all_batches)
    assert all(part["shard"].nunique() == 1 for part in all_batches)
    columns = [*IDENTITY, *KEY_COLUMNS]
    pd.testing.assert_frame_equal(plan[columns], reference[columns])


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_shipped_surveys_plan(name: str) -> None:
    survey = load_survey(SURVEYS / f"{name}.yaml")
    plan = make_plan(survey)
    assert len(plan) == survey.n_runs
    assert n_shards(plan) == -(-survey.n_runs // survey.execution.shard_size)
    parts = [b for k in range(n_shards(plan)) for b in batches(shard_runs(plan, k), survey.execution.batch_size)]
    _assert_partition(parts, plan)


SHIPPED_KEY_DIGESTS = {
    "tiny": "9a144def65a262ca",
    "default": "69d27012765bbb7e",
    "saddle_to_saddle": "61fb246bc36fce67",
    "safran_shamir": "b932d5bfe04ccefe",
    "audit": "2fb6d60408846d03",
    "genuine_rate": "93672e25b341d93e",
}
"""Digest of the sorted (data_key, init_key) pairs of shipped surveys, recorded before settings were added
(file and scikit-learn data): adding a setting must not change the seeds, hence the numbers, of existing runs."""

RECORDED_SHAPES: dict[str, dict[str, Any]] = {"safran_shamir": {"seeds": {"data": 1, "init": 30}, "n_cases": 14}}
"""Surveys grown since their digest was recorded (safran_shamir: from k <= 12 and 30 runs per case to k <= 16 and
100): the digest covers the runs the survey had then, whose keys must not have changed."""


@pytest.mark.parametrize("name", sorted(SHIPPED_KEY_DIGESTS))
def test_adding_settings_leaves_the_seed_keys_of_shipped_surveys_unchanged(name: str) -> None:
    spec = yaml.safe_load((SURVEYS / f"{name}.yaml").read_text())
    if name in RECORDED_SHAPES:
        shape = RECORDED_SHAPES[name]
        spec["seeds"] = shape["seeds"]
        spec["cases"] = spec["cases"][: shape["n_cases"]]
    plan = make_plan(parse_survey(spec))
    keys = sorted(set(zip(plan["data_key"].tolist(), plan["init_key"].tolist(), strict=True)))
    assert hashlib.sha256(repr(keys).encode()).hexdigest()[:16] == SHIPPED_KEY_DIGESTS[name]

"""Given data sets (``input_distribution: file`` and ``sklearn``): reading, checks, preparation, seeds.

Oracles: the arrays written to the file itself (round trip), numpy's own mean, variance and SVD for the
standardisation and the principal components, and scikit-learn's loaders for the shipped data sets.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.batch import run_inputs
from pipeline.data.given import given_source, load_given
from pipeline.survey import SurveyError, parse_survey
from pipeline.survey.plan import make_plan, run_settings

SOURCE = "surveys/g.yaml"


def survey(fixed: dict[str, Any], *, data_seeds: int = 1, grid: dict[str, Any] | None = None) -> dict[str, Any]:
    """A small survey on a given data set (``fixed`` names the data)."""
    return {
        "schema_version": 1,
        "description": "given data",
        "master_seed": 3,
        "seeds": {"data": data_seeds, "init": 2},
        "fixed": {"init_scale": 0.5, "max_steps": 50, "width": 3, **fixed},
        "grid": grid or {},
    }


def rejected(data: dict[str, Any]) -> str:
    with pytest.raises(SurveyError) as info:
        parse_survey(data, "g", source=SOURCE)
    message = str(info.value)
    assert all(line.startswith(f"{SOURCE}: ") for line in message.splitlines()), message
    return message


def first_run(data: dict[str, Any], row: int = 0) -> Any:
    """The dataset and settings of one run of the survey ``data``."""
    plan = make_plan(parse_survey(data, "g", source=SOURCE))
    settings = run_settings(plan.iloc[row])
    return run_inputs(settings, 3, int(plan.iloc[row]["data_seed"]), int(plan.iloc[row]["init_seed"])), settings


@pytest.fixture
def npz_file(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    path = tmp_path / "points.npz"
    np.savez(path, x=x, y=y)
    return path, x, y


def file_fixed(path: Path, **extra: Any) -> dict[str, Any]:
    return {"input_distribution": "file", "data_file": str(path), "input_dim": 3, "output_dim": 2, **extra}


def test_npz_round_trip_into_the_run(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, x, y = npz_file
    inputs, _ = first_run(survey(file_fixed(path, bias=True)))
    np.testing.assert_array_equal(inputs.dataset.x[:, :3], x)
    np.testing.assert_array_equal(inputs.dataset.x[:, 3], 1.0)
    np.testing.assert_array_equal(inputs.dataset.y, y)


def test_csv_round_trip_takes_the_named_targets_and_every_other_column(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("a,t,b\n1.5,10,2\n-1,20,0.25\n3,30,4\n", encoding="utf-8")
    fixed = {"input_distribution": "file", "data_file": str(path), "target_columns": "t", "input_dim": 2}
    inputs, _ = first_run(survey(fixed))
    np.testing.assert_array_equal(inputs.dataset.x, [[1.5, 2.0], [-1.0, 0.25], [3.0, 4.0]])
    np.testing.assert_array_equal(inputs.dataset.y, [[10.0], [20.0], [30.0]])


def test_a_csv_needs_its_target_columns(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("a,t\n1,2\n", encoding="utf-8")
    message = rejected(survey({"input_distribution": "file", "data_file": str(path), "input_dim": 1}))
    assert "target_columns: missing" in message
    bad = {"input_distribution": "file", "data_file": str(path), "target_columns": "y", "input_dim": 1}
    assert "has no column 'y'" in rejected(survey(bad))


def _write(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "absent.npz", "cannot be read"),
    "suffix": (lambda d: (d / "points.txt").write_text("1 2\n") and d / "points.txt", "unknown format '.txt'"),
    "not npz": (lambda d: (d / "bad.npz").write_text("not a zip") and d / "bad.npz", "not a readable .npz"),
    "y missing": (lambda d: _write(d / "a.npz", x=np.ones((4, 3))), "has no array 'y'"),
    "x 1-d": (lambda d: _write(d / "a.npz", x=np.ones(4), y=np.ones(4)), "x must be (n, d)"),
    "x 3-d": (lambda d: _write(d / "a.npz", x=np.ones((4, 3, 1)), y=np.ones(4)), "x must be (n, d)"),
    "rows": (lambda d: _write(d / "a.npz", x=np.ones((4, 3)), y=np.ones((5, 2))), "x has 4 rows but y has 5"),
    "nan": (lambda d: _write(d / "a.npz", x=np.full((4, 3), np.nan), y=np.ones((4, 2))), "12 NaN or infinite"),
    "dtype": (lambda d: _write(d / "a.npz", x=np.full((4, 3), "a"), y=np.ones((4, 2))), "x has dtype <U1"),
    "complex": (lambda d: _write(d / "a.npz", x=np.ones((4, 3), complex), y=np.ones((4, 2))), "dtype complex128"),
    "empty": (lambda d: _write(d / "a.npz", x=np.ones((0, 3)), y=np.ones((0, 2))), "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_fail_before_any_job_naming_the_file(tmp_path: Path, case: str) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    message = rejected(survey(file_fixed(path)))
    assert f"data_file {str(path)!r}" in message, message
    assert expected in message, message


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    with path.open("wb") as handle:  # a sparse 2 GiB file: no disk space, no reading
        handle.truncate(2 * 2**30)
    message = rejected(survey(file_fixed(path)))
    assert "is 2.0 GiB, above the limit" in message


def test_dimensions_and_subsample_must_fit_the_data(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path = npz_file[0]
    assert "fixed.input_dim: 2 differs from the 3 inputs" in rejected(survey(file_fixed(path, input_dim=2)))
    assert "fixed.output_dim: 1 differs from the 2 targets" in rejected(survey(file_fixed(path, output_dim=1)))
    assert "fixed.subsample: 8 exceeds the 7 rows" in rejected(survey(file_fixed(path, subsample=8)))
    pca = file_fixed(path, input_dim=4, projection="pca")
    assert "principal components" in rejected(survey(pca))


def test_settings_of_drawn_data_are_refused_with_given_data(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path = npz_file[0]
    for name, value in (("n_samples", 8), ("target", "affine"), ("label_noise", 0.1)):
        message = rejected(survey(file_fixed(path, **{name: value})))
        assert f"fixed.{name}: {value!r} is not allowed with input_distribution 'file'" in message


def test_several_data_seeds_need_a_subsample(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path = npz_file[0]
    message = rejected(survey(file_fixed(path), data_seeds=3))
    assert "seeds.data: 3 data seeds would train 3 times on the same given data set" in message
    assert "subsample" in message
    parse_survey(survey(file_fixed(path, subsample=5), data_seeds=3), "g", source=SOURCE)


def test_subsamples_are_rows_of_the_set_that_vary_with_the_data_seed_only(
    npz_file: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, x, y = npz_file
    data = survey(file_fixed(path, subsample=4), data_seeds=3)
    plan = make_plan(parse_survey(data, "g", source=SOURCE))
    subsets = {}
    for _, row in plan.iterrows():
        dataset = run_inputs(run_settings(row), 3, int(row["data_seed"]), int(row["init_seed"])).dataset
        rows = [int(np.flatnonzero((x == point).all(axis=1))[0]) for point in dataset.x]
        assert rows == sorted(set(rows)) and len(rows) == 4
        np.testing.assert_array_equal(dataset.y, y[rows])
        subsets.setdefault(int(row["data_seed"]), set()).add(tuple(rows))
    assert all(len(seen) == 1 for seen in subsets.values())  # init seeds share the data seed's subset
    assert len({next(iter(seen)) for seen in subsets.values()}) > 1


def test_standardisation_and_principal_components_match_numpy(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, x, _ = npz_file
    inputs, _ = first_run(survey(file_fixed(path, scaling="standardize")))
    np.testing.assert_allclose(inputs.dataset.x.mean(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(inputs.dataset.x.var(axis=0), 1.0, rtol=1e-12)
    inputs, _ = first_run(survey(file_fixed(path, input_dim=2, projection="pca")))
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    signs = np.sign(np.sum(expected * inputs.dataset.x, axis=0))  # a component is defined up to its sign
    np.testing.assert_allclose(inputs.dataset.x, expected * signs, atol=1e-12)


@pytest.mark.parametrize(("name", "shape", "classes"), [("iris", (150, 4), 3), ("diabetes", (442, 10), 1)])
def test_sklearn_sets_match_their_loaders(name: str, shape: tuple[int, int], classes: int) -> None:
    from sklearn import datasets

    fixed = {"input_distribution": "sklearn", "dataset": name, "input_dim": shape[1], "output_dim": classes}
    inputs, settings = first_run(survey(fixed))
    x, labels = getattr(datasets, f"load_{name}")(return_X_y=True)
    np.testing.assert_array_equal(inputs.dataset.x, x)
    if classes > 1:
        np.testing.assert_array_equal(inputs.dataset.y.argmax(axis=1), labels)
        np.testing.assert_array_equal(inputs.dataset.y.sum(axis=1), 1.0)
    else:
        np.testing.assert_array_equal(inputs.dataset.y[:, 0], labels)
    assert given_source(settings) == f"sklearn:{name}"
    assert "dataset: missing" in rejected(survey({"input_distribution": "sklearn", "input_dim": 4}))


def test_an_edited_file_is_read_again(npz_file: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, x, y = npz_file
    settings = {"input_distribution": "file", "data_file": str(path), "target_columns": None}
    before = load_given(settings).provenance["sha256"]
    np.savez(path, x=x + 1.0, y=y)
    os.utime(path, ns=(0, 10**9))  # a different modification time even on coarse clocks
    after = load_given(settings)
    assert after.provenance["sha256"] != before
    np.testing.assert_array_equal(after.x, x + 1.0)


def test_keys_of_given_data_depend_on_the_file_setting_not_on_drawn_data_settings(
    npz_file: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path = npz_file[0]
    base = make_plan(parse_survey(survey(file_fixed(path)), "g", source=SOURCE))
    other = copy.deepcopy(survey(file_fixed(path, scaling="standardize")))
    changed = make_plan(parse_survey(other, "g", source=SOURCE))
    assert (base["data_key"] != changed["data_key"]).all()


def test_the_setting_offers_exactly_the_registered_sources() -> None:
    import typing

    from pipeline.data import DATA_SOURCES
    from pipeline.survey.settings import Settings

    choices = typing.get_args(Settings.model_fields["input_distribution"].annotation)
    assert set(choices) == set(DATA_SOURCES)


def test_shards_on_different_data_are_not_merged() -> None:
    from pipeline.data.given import merge_provenance

    same = {"file:a.npz": {"sha256": "1"}}
    assert merge_provenance([same, same, {"sklearn:iris": {"sha256": "2"}}]).keys() == {"file:a.npz", "sklearn:iris"}
    with pytest.raises(ValueError, match="file:a.npz: the data changed between shards"):
        merge_provenance([same, {"file:a.npz": {"sha256": "3"}}])


def test_a_scikit_learn_survey_trains_and_classifies_through_a_batch() -> None:
    from pipeline.batch import simulate_batch
    from pipeline.stationary import labels
    from pipeline.survey.plan import batches
    from pipeline.workflow.commands.simulate import padding

    fixed = {
        "input_distribution": "sklearn",
        "dataset": "iris",
        "scaling": "standardize",
        "projection": "pca",
        "input_dim": 2,
        "output_dim": 3,
        "subsample": 20,
        "bias": True,
        "max_steps": 300,
    }
    parsed = parse_survey(survey(fixed, data_seeds=2), "g", source=SOURCE)
    rows = batches(make_plan(parsed), 4)[0]
    record = simulate_batch(rows, master_seed=parsed.master_seed, padding=padding(parsed), device="cpu")
    assert record["w_final"].shape == (4, 3, 3) and record["a_final"].shape == (4, 3, 3)
    assert np.isfinite(record["loss_final"]).all() and (record["loss_final"] < record["checkpoint_loss"][:, 0]).all()
    assert set(record["end_point_type"]) <= {labels.code(labels.POINT_TYPE, name) for name in labels.POINT_TYPE}

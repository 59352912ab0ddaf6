"""The embedding option end to end: simulate and collect with ``classify.embeddings``; the store and its check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline import store
from pipeline.stationary import labels
from pipeline.stationary.embedding import embedding_layout
from pipeline.store import validation
from pipeline.store.schema import VARIABLES
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan
from tests.workflow.helpers import run_survey, write_survey

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")

EMBEDDING_VARIABLES = sorted(name for name, variable in VARIABLES.items() if variable.option == "classify.embeddings")


@pytest.fixture(scope="module")
def embedding_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("embedding")
    survey = write_survey(root / "surveys", "embed", classify={"embeddings": True, "embedding_betas": [0.0, 0.5, 2.0]})
    return survey, run_survey(survey, root / "results")


def test_the_store_holds_the_embeddings_and_they_agree_with_the_theorem(embedding_store) -> None:
    survey_path, path = embedding_store
    assert store.validate(path, make_plan(load_survey(survey_path))) == []
    dataset = xr.open_zarr(path).load()
    assert set(EMBEDDING_VARIABLES) <= set(dataset.data_vars)
    kind, neuron, beta = embedding_layout(4, [0.0, 0.5, 2.0])  # the survey's widest network has 4 neurons
    assert dataset.sizes["embedding"] == kind.size
    source = dataset["embedding_source_type"].values
    built = dataset["embedding_kind"].values >= 0
    assert (built.any(axis=1) == (source >= 0)).all() and built.any()
    for name, layout in (("embedding_kind", kind), ("embedding_neuron", neuron)):
        values = dataset[name].values
        assert (values[built] == np.broadcast_to(layout, values.shape)[built]).all(), name
    narrow = (dataset["width"].values == 2)[:, None] & (np.arange(kind.size) >= 3 + 2 * 3)[None]
    assert not built[narrow].any()  # width-2 runs have no E3 slots for neurons 2 and 3
    observed = dataset["embedding_point_type"].values
    assert ((observed >= 0) == built).all()
    predicted = dataset["embedding_predicted"].values.astype(np.int64)
    agree = (predicted >> np.clip(observed, 0, None)) & 1
    assert (agree[built & (predicted != 0)] == 1).all()
    assert (observed[built & (kind == labels.EMBEDDING_KIND.index("E1_zero"))] >= 0).all()


def test_a_store_without_the_option_is_valid_and_one_missing_a_variable_is_not(embedding_store, micro_store) -> None:
    assert not set(EMBEDDING_VARIABLES) & set(xr.open_zarr(micro_store).data_vars)  # the option is off there
    _, path = embedding_store
    dataset = xr.open_zarr(path).load().drop_vars("embedding_predicted")
    problems = validation._schema_problems(dataset, unreadable=set())
    assert problems == ["variable 'embedding_predicted' is missing"]

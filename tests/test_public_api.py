"""The public surface: ``import pipeline`` trains and classifies; ``__version__`` is the installed version."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import torch

import analysis
import pipeline

REPO = Path(__file__).resolve().parents[1]


def test_version_is_the_one_of_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert pipeline.__version__ == project["version"]


def test_the_public_names_are_exported() -> None:
    for name in pipeline.__all__:
        assert hasattr(pipeline, name), name
    assert callable(analysis.open_survey)


def test_train_and_classify_a_batch_from_the_package() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6, 2, dtype=torch.float64, generator=generator)
    y = torch.relu(x @ torch.tensor([[1.0], [0.5]], dtype=torch.float64))
    w0 = 0.5 * torch.randn(3, 2, 2, dtype=torch.float64, generator=generator)
    a0 = 0.5 * torch.randn(3, 2, 1, dtype=torch.float64, generator=generator)
    descent = pipeline.run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.1, max_steps=2000)
    verdicts = pipeline.classify_batch(descent.w_final, descent.a_final, x, y, leak=0.0)
    assert isinstance(verdicts, pipeline.BatchClassification) and verdicts.point_type.shape == (3,)
    np.testing.assert_allclose(verdicts.loss, descent.loss_final.numpy(), rtol=1e-12, atol=1e-15)

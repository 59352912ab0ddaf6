"""Monte Carlo survey of the loss landscape of shallow ReLU-like networks: the public surface.

Train a batch of networks (a leading run axis) and classify where they stop, in a notebook::

    from pipeline import classify_batch, run_gradient_descent
    descent = run_gradient_descent(w0, a0, x, y, leak=0.0, learning_rate=0.05, max_steps=20_000)
    verdicts = classify_batch(descent.w_final, descent.a_final, x, y, leak=0.0)

The population losses have their own entry points (:func:`run_population_gradient_descent`,
:func:`run_interval_gradient_descent`); :func:`classify_point` classifies one point with decoded labels.
Survey stores are opened with :func:`analysis.open_survey`. Importing this package loads neither
``dask.distributed`` nor ``snakemake`` (``tests/test_layers.py``).
"""

from importlib.metadata import PackageNotFoundError, version

from pipeline.engine import (
    DescentResult,
    StopReason,
    run_gradient_descent,
    run_interval_gradient_descent,
    run_population_gradient_descent,
)
from pipeline.stationary import BatchClassification, PointReport, classify_batch, classify_point

try:
    __version__ = version("relu-landscape-survey")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BatchClassification",
    "DescentResult",
    "PointReport",
    "StopReason",
    "__version__",
    "classify_batch",
    "classify_point",
    "run_gradient_descent",
    "run_interval_gradient_descent",
    "run_population_gradient_descent",
]

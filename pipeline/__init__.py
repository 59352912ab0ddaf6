"""Monte Carlo survey of the loss landscape of shallow ReLU-like networks: the public surface.

Train a batch of networks (a leading run axis) and classify where they stop, in a notebook::

    from pipeline import SampledProblem, descend
    problem = SampledProblem(x, y, activation=0.0)          # ReLU; a number is a leaky ReLU's slope
    descent = descend(problem, w0, a0, learning_rate=0.05, max_steps=20_000)
    verdicts = problem.classify(descent.w_final, descent.a_final, "end_point")

Every loss is a :class:`Problem` (:class:`SampledProblem`, :class:`GaussianPopulationProblem`,
:class:`IntervalPopulationProblem`) and :func:`descend` trains on any of them; :func:`run_gradient_descent`,
:func:`run_population_gradient_descent` and :func:`run_interval_gradient_descent` build the problem and descend
in one call. :func:`classify_batch` classifies sampled points directly and :func:`classify_point` one point with
decoded labels.
Survey stores are opened with :func:`analysis.open_survey`. Importing this package loads neither
``dask.distributed`` nor ``snakemake`` (``tests/test_layers.py``).
"""

from importlib.metadata import PackageNotFoundError, version

from pipeline.dynamics import DescentResult, StopReason, descend
from pipeline.problems import (
    GaussianPopulationProblem,
    IntervalPopulationProblem,
    Problem,
    SampledProblem,
    VerdictOptions,
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
    "GaussianPopulationProblem",
    "IntervalPopulationProblem",
    "PointReport",
    "Problem",
    "SampledProblem",
    "StopReason",
    "VerdictOptions",
    "__version__",
    "classify_batch",
    "classify_point",
    "descend",
    "run_gradient_descent",
    "run_interval_gradient_descent",
    "run_population_gradient_descent",
]

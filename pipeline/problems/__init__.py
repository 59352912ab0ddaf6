"""The losses a batch of networks trains on, each one class behind one interface (:class:`Problem`).

:class:`SampledProblem` (finitely many samples), :class:`GaussianPopulationProblem` (Gaussian inputs and a
teacher, in closed form) and :class:`IntervalPopulationProblem` (inputs uniform on an interval and an affine
target, exact); the survey's registry of them by data source is :mod:`pipeline.problems.registry`. The
``run_*`` functions build a problem and call :func:`pipeline.dynamics.descend` (notebook use).
"""

from pipeline.problems.base import Problem, VerdictOptions
from pipeline.problems.gaussian import GaussianPopulationProblem, run_population_gradient_descent
from pipeline.problems.interval import IntervalPopulationProblem, run_interval_gradient_descent
from pipeline.problems.registry import PROBLEMS, build_problem, loss_formula
from pipeline.problems.sampled import SampledProblem, data_scales, run_gradient_descent

__all__ = [
    "PROBLEMS",
    "GaussianPopulationProblem",
    "IntervalPopulationProblem",
    "Problem",
    "SampledProblem",
    "VerdictOptions",
    "build_problem",
    "data_scales",
    "loss_formula",
    "run_gradient_descent",
    "run_interval_gradient_descent",
    "run_population_gradient_descent",
]

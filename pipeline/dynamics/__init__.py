"""Dynamics that train a batch of networks on a :class:`~pipeline.problems.Problem`.

Every dynamics takes a problem and initial parameters with a leading run axis and returns a
:class:`DescentResult`: :func:`descend` is full-batch gradient descent, :func:`flow` the gradient flow
(:mod:`pipeline.dynamics.gradient_flow`); :func:`train` runs the one a survey cell names.
"""

from pipeline.dynamics.gradient_descent import GRAD_TOL_FLOOR_EPS, DescentOptions, descend
from pipeline.dynamics.gradient_flow import FlowOptions, FlowResult, flow
from pipeline.dynamics.registry import DYNAMICS, train
from pipeline.dynamics.result import DescentResult, StopReason

__all__ = [
    "DYNAMICS", "GRAD_TOL_FLOOR_EPS", "DescentOptions", "DescentResult", "FlowOptions", "FlowResult", "StopReason",
    "descend", "flow", "train",
]  # fmt: skip

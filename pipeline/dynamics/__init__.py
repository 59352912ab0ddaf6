"""Dynamics that train a batch of networks on a :class:`~pipeline.problems.Problem`.

Every dynamics takes a problem and initial parameters with a leading run axis and returns a
:class:`DescentResult`; :func:`descend` is full-batch gradient descent.
"""

from pipeline.dynamics.gradient_descent import GRAD_TOL_FLOOR_EPS, DescentOptions, descend
from pipeline.dynamics.result import DescentResult, StopReason

__all__ = ["GRAD_TOL_FLOOR_EPS", "DescentOptions", "DescentResult", "StopReason", "descend"]

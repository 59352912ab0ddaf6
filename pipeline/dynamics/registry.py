"""The dynamics a survey names (setting ``dynamics``), each one function of a problem, a start and the settings.

Adding a dynamics is one entry of :data:`DYNAMICS`: a function that reads its options from a cell's settings and
returns a :class:`~pipeline.dynamics.DescentResult`, which everything downstream (classification, end game,
store) reads whatever trained the runs.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from pipeline.dynamics.gradient_descent import descend
from pipeline.dynamics.gradient_flow import FlowOptions, flow
from pipeline.dynamics.result import DescentResult

if TYPE_CHECKING:
    from pipeline.problems.base import Problem

__all__ = ["DYNAMICS", "flow_options", "train"]

Dynamics = Callable[["Problem", torch.Tensor, torch.Tensor, Mapping[str, Any]], DescentResult]


def _gradient_descent(
    problem: Problem, w0: torch.Tensor, a0: torch.Tensor, settings: Mapping[str, Any]
) -> DescentResult:
    return descend(
        problem,
        w0,
        a0,
        learning_rate=settings["learning_rate"],
        max_steps=settings["max_steps"],
        grad_tol=settings["grad_tol"],
        n_checkpoints=settings["n_checkpoints"],
    )


def flow_options(settings: Mapping[str, Any]) -> FlowOptions:
    """The integrator's options from a cell's settings (``max_time`` defaults to ``max_steps * learning_rate``)."""
    max_time = settings["max_time"]
    return FlowOptions(
        learning_rate=settings["learning_rate"],
        max_time=settings["max_steps"] * settings["learning_rate"] if max_time is None else max_time,
        rtol=settings["ode_rtol"],
        atol=settings["ode_atol"],
        grad_tol=settings["grad_tol"],
        n_checkpoints=settings["n_checkpoints"],
        max_steps=settings["max_steps"],
    )


def _gradient_flow(problem: Problem, w0: torch.Tensor, a0: torch.Tensor, settings: Mapping[str, Any]) -> DescentResult:
    return flow(problem, w0, a0, flow_options(settings)).descent


DYNAMICS: Mapping[str, Dynamics] = types.MappingProxyType({"gd": _gradient_descent, "gradient_flow": _gradient_flow})
"""Each value of the ``dynamics`` setting and the function that trains with it."""


def train(problem: Problem, w0: torch.Tensor, a0: torch.Tensor, settings: Mapping[str, Any]) -> DescentResult:
    """Train the runs of ``problem`` from ``w0`` (R, m, d), ``a0`` (R, m, k) with the cell's ``dynamics``."""
    return DYNAMICS[settings["dynamics"]](problem, w0, a0, settings)

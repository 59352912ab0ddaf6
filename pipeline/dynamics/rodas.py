"""One batched step of RODAS4, the L-stable Rosenbrock method of order 4(3), with its dense output.

For an autonomous system ``dy/dt = f(y)`` with Jacobian ``J``, a Rosenbrock step of size ``h`` solves six
linear systems with one matrix ``M = I / (h gamma) - J`` (Hairer & Wanner, *Solving ODEs II*, IV.7, the
coefficients of their code ``rodas.f``)::

    M k_i = f(y + sum_{j<i} a_ij k_j) + sum_{j<i} (c_ij / h) k_j,      i = 1..6,

with ``y_new = y + sum_{j<5} a_5j k_j + k_5 + k_6`` (the method is stiffly accurate: the last two stage points
are the embedded and the main solution) and the local error estimate ``k_6``. The dense output is
``y(theta) = (1 - theta) y + theta (y_new + (1 - theta) (D_1 + theta D_2))`` with ``D_1, D_2`` fixed
combinations of ``k_1 .. k_5`` (order 3 in ``theta``).

Everything is batched over a leading run axis ``R``, each run with its own step size ``h`` (R,): the systems are
one batched LU factorisation and batched triangular solves. Device and dtype come from the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["GAMMA", "RosenbrockStep", "dense_output", "rosenbrock_step"]

GAMMA = 0.25
"""The diagonal coefficient ``gamma`` of RODAS4."""

_A = (
    (1.544,),
    (0.9466785280815826, 0.2557011698983284),
    (3.314825187068521, 2.896124015972201, 0.9986419139977817),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950),
)
_C = (
    (-5.6688,),
    (-2.430093356833875, -0.2063599157091915),
    (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
    (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
    (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
)
_DENSE = (
    (10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662),
    (-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872),
)


@dataclass(frozen=True)
class RosenbrockStep:
    """A trial step of every run.

    Attributes
    ----------
    y_new : (R, P)
        The solution after the step.
    error : (R, P)
        The local error estimate ``k_6``.
    dense : (2, R, P)
        The dense-output combinations ``D_1, D_2``.
    """

    y_new: torch.Tensor
    error: torch.Tensor
    dense: torch.Tensor


def _combine(coefficients: tuple[float, ...], stages: list[torch.Tensor]) -> torch.Tensor:
    """``sum_j coefficients[j] stages[j]``."""
    total = coefficients[0] * stages[0]
    for coefficient, stage in zip(coefficients[1:], stages[1:], strict=False):
        total = total + coefficient * stage
    return total


def _lu_factor(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched LU factors and pivots; on CPU with one thread.

    The batched ``getrf`` of the MKL build behind ``torch.linalg.lu_factor`` returns garbage pivots when it runs
    on more than one thread (seen with torch on 2 threads for (30, 156, 156)); one thread is also the faster one
    for these small matrices, which are factored one after the other anyway.
    """
    if matrix.device.type != "cpu":
        factors, pivots, _ = torch.linalg.lu_factor_ex(matrix)
        return factors, pivots
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        factors, pivots, _ = torch.linalg.lu_factor_ex(matrix)
    finally:
        torch.set_num_threads(threads)
    return factors, pivots


def rosenbrock_step(
    field: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    f0: torch.Tensor,
    jacobian: torch.Tensor,
    h: torch.Tensor,
) -> RosenbrockStep:
    """One RODAS4 step of size ``h`` (R,) from ``y`` (R, P), with ``f0 = field(y)`` and ``jacobian`` (R, P, P).

    ``field`` is called five times (stages 2 to 6). A singular step matrix gives non-finite values, which the
    step-size control rejects.
    """
    n_params = y.shape[-1]
    eye = torch.eye(n_params, dtype=y.dtype, device=y.device)
    inverse_h = (1.0 / h).unsqueeze(-1)
    matrix = eye / (GAMMA * h)[:, None, None] - jacobian
    factors, pivots = _lu_factor(matrix)

    def solve(rhs: torch.Tensor) -> torch.Tensor:
        return torch.linalg.lu_solve(factors, pivots, rhs.unsqueeze(-1)).squeeze(-1)

    stages = [solve(f0)]
    for i in range(4):  # stages 2 to 5
        rhs = field(y + _combine(_A[i], stages)) + inverse_h * _combine(_C[i], stages)
        stages.append(solve(rhs))
    embedded = y + _combine(_A[3], stages) + stages[4]  # stage 6 is at the embedded solution
    stages.append(solve(field(embedded) + inverse_h * _combine(_C[4], stages)))
    y_new = embedded + stages[5]
    dense = torch.stack([_combine(_DENSE[0], stages[:5]), _combine(_DENSE[1], stages[:5])])
    return RosenbrockStep(y_new=y_new, error=stages[5], dense=dense)


def dense_output(y: torch.Tensor, step: RosenbrockStep, theta: torch.Tensor) -> torch.Tensor:
    """The solution at the fraction ``theta`` (R,) of each run's step, (R, P)."""
    theta = theta.unsqueeze(-1)
    tail = step.y_new + (1.0 - theta) * (step.dense[0] + theta * step.dense[1])
    return (1.0 - theta) * y + theta * tail

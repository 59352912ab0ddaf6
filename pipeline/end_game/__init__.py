"""The end game: following a run from where its budget ended to the point it tends to.

:mod:`~pipeline.end_game.staged` finishes runs of the sampled loss (an exponential integrator with kink events,
:mod:`~pipeline.end_game.exponential` and :mod:`~pipeline.end_game.kinks`, then Gauss-Newton and a kink-constrained
polish); :mod:`~pipeline.end_game.by_flow` finishes runs of the population losses by their gradient flow. A problem
(:mod:`pipeline.problems`) chooses which; every finish is a :class:`Finish`.
"""

from pipeline.end_game.staged import EndGameMethod, EndGameOptions, Finish, finish_runs, rebalance

__all__ = ["EndGameMethod", "EndGameOptions", "Finish", "finish_runs", "rebalance"]

"""Physical invariants of a survey store, checked by :func:`pipeline.store.validation.validate`.

Checksums prove that a store holds the bytes that were written; these rules catch numbers that no
correct computation writes, whatever their checksums say:

* losses and gradient norms (every variable named ``*loss*`` or ``*grad_norm*``) are never negative
  or infinite for a run that did not diverge (NaN marks "no value" and is checked elsewhere);
* labels lie within their ``flag_values`` (bit fields: within their ``flag_masks``) or are -1, the
  schema's "no value" (a padded slot, a quantity that does not apply);
* per-run and per-plateau counts equal the per-neuron flags they summarise;
* a plateau starts before it ends, its representative step lies within it, it ends by the step
  after the last one, and the filled plateau slots match ``n_plateaus``;
* steps taken lie within the step budget ``max_steps``.

Each violation is one line naming the variable and the runs. The store is read one chunk of runs
at a time, and only the variables a rule needs (never the parameter arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from pipeline.dynamics import StopReason
from pipeline.stationary import labels

__all__ = ["invariant_problems"]

NO_VALUE = -1
"""The code of "no value" in every categorical variable (:mod:`pipeline.store.schema`)."""
SHOWN_RUNS = 5
"""Runs named per violation (the count says how many there are)."""
DEAD_ROLES = ("dead", "dead_touching")
BLOCK_RUNS = 100_000
"""Runs read at a time (rounded up to whole chunks): a few tens of MB of flags and curves."""

Block = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One invariant: ``bad(block)`` marks the violating runs (a bool per run) of ``variable``."""

    variable: str
    needs: tuple[str, ...]
    what: str
    bad: Callable[[Block], np.ndarray]


def _any_beyond_run(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask.reshape(mask.shape[0], -1).any(axis=1) if mask.ndim > 1 else mask)


def _not_diverged(block: Block) -> np.ndarray:
    return block["stop_reason"] != int(StopReason.DIVERGED)


def _nonnegative_rule(name: str) -> Rule:
    def bad(block: Block) -> np.ndarray:
        values = block[name]
        with np.errstate(invalid="ignore"):
            wrong = _any_beyond_run((values < 0) | np.isinf(values))
        return wrong & _not_diverged(block)

    return Rule(name, (name, "stop_reason"), "is negative or infinite for a run that did not diverge", bad)


def _flag_rule(name: str, variable: xr.DataArray) -> Rule:
    attrs = variable.attrs

    def bad(block: Block) -> np.ndarray:
        values = block[name].astype(np.int64)
        if "flag_masks" in attrs:
            allowed = int(np.bitwise_or.reduce(np.asarray(attrs["flag_masks"], dtype=np.int64)))
            wrong = (values < 0) | (values & ~allowed != 0)
        else:
            wrong = ~np.isin(values, np.asarray(attrs["flag_values"], dtype=np.int64))
        return _any_beyond_run(wrong & (values != NO_VALUE))

    kind = "flag_masks" if "flag_masks" in attrs else "flag_values"
    return Rule(name, (name,), f"holds a code outside its {kind}", bad)


def _count_rule(name: str, flags: tuple[str, ...], count: Callable[[Block], np.ndarray], what: str) -> Rule:
    def bad(block: Block) -> np.ndarray:
        return _any_beyond_run(block[name] != count(block))

    return Rule(name, (name, *flags), f"differs from {what}", bad)


def _plateau_count(count: Callable[[Block], np.ndarray]) -> Callable[[Block], np.ndarray]:
    """A per-plateau count: ``count`` in filled slots, -1 in empty ones."""
    return lambda block: np.where(block["plateau_start"] >= 0, count(block), -1)


def _dead(block: Block) -> np.ndarray:
    codes = [labels.code(labels.ROLE, role) for role in DEAD_ROLES]
    return np.isin(block["end_roles"], codes).sum(axis=-1)


COUNTS: tuple[tuple[str, tuple[str, ...], Callable[[Block], np.ndarray], str], ...] = (
    ("n_escape_neurons", ("end_escape",), lambda b: b["end_escape"].sum(axis=-1), "the number of end_escape flags"),
    ("n_kink_neurons", ("end_kink",), lambda b: b["end_kink"].sum(axis=-1), "the number of end_kink flags"),
    ("n_dead_neurons", ("end_roles",), _dead, "the number of dead roles in end_roles"),
    (
        "plateau_n_escape",
        ("plateau_escape", "plateau_start"),
        _plateau_count(lambda b: b["plateau_escape"].sum(axis=-1)),
        "the number of plateau_escape flags",
    ),
    (
        "plateau_n_grew",
        ("plateau_grew", "plateau_start"),
        _plateau_count(lambda b: b["plateau_grew"].sum(axis=-1)),
        "the number of plateau_grew flags",
    ),
    (
        "plateau_n_grew_predicted",
        ("plateau_grew", "plateau_escape", "plateau_start"),
        _plateau_count(lambda b: (b["plateau_grew"] & b["plateau_escape"]).sum(axis=-1)),
        "the number of neurons flagged in both plateau_grew and plateau_escape",
    ),
)


def _filled_count_rule() -> Rule:
    """``n_plateaus``, capped at the number of slots, equals the number of filled slots."""

    def bad(block: Block) -> np.ndarray:
        filled = (block["plateau_start"] >= 0).sum(axis=-1)
        return np.minimum(block["n_plateaus"], block["plateau_start"].shape[1]) != filled

    return Rule("n_plateaus", ("n_plateaus", "plateau_start"), "differs from the number of filled plateau slots", bad)


def _plateau_rules() -> list[Rule]:
    def before(block: Block) -> np.ndarray:
        filled = block["plateau_start"] >= 0
        return _any_beyond_run(filled & (block["plateau_start"] >= block["plateau_end"]))

    def within(block: Block) -> np.ndarray:
        filled = block["plateau_start"] >= 0
        step = block["plateau_step"]
        return _any_beyond_run(filled & ((step < block["plateau_start"]) | (step > block["plateau_end"])))

    def after_run(block: Block) -> np.ndarray:
        filled = block["plateau_start"] >= 0
        return _any_beyond_run(filled & (block["plateau_end"] > block["steps_taken"][:, None] + 1))

    return [
        Rule("plateau_start", ("plateau_start", "plateau_end"), "is not before plateau_end", before),
        Rule("plateau_step", ("plateau_step", "plateau_start", "plateau_end"), "lies outside its plateau", within),
        Rule(
            "plateau_end", ("plateau_end", "plateau_start", "steps_taken"), "lies after the run's last step", after_run
        ),
    ]


def _steps_rule() -> Rule:
    def bad(block: Block) -> np.ndarray:
        return (block["steps_taken"] < 0) | (block["steps_taken"] > block["max_steps"])

    return Rule("steps_taken", ("steps_taken", "max_steps"), "lies outside 0..max_steps (the step budget)", bad)


def rules(dataset: xr.Dataset) -> list[Rule]:
    """The invariants that apply to ``dataset``: the generic ones for each of its variables, then the
    counts, plateaus and steps (a rule whose variables the store lacks is left out)."""
    found: list[Rule] = []
    for name, variable in dataset.data_vars.items():
        if variable.dtype.kind == "f" and ("loss" in str(name) or "grad_norm" in str(name)):
            found.append(_nonnegative_rule(str(name)))
        if variable.dtype.kind in "iu" and ("flag_values" in variable.attrs or "flag_masks" in variable.attrs):
            found.append(_flag_rule(str(name), variable))
    found += [_count_rule(name, flags, count, what) for name, flags, count, what in COUNTS]
    found += [_filled_count_rule(), *_plateau_rules(), _steps_rule()]
    return [rule for rule in found if all(name in dataset.variables for name in (rule.variable, *rule.needs))]


def invariant_problems(dataset: xr.Dataset, *, skip: Collection[str] = ()) -> list[str]:
    """Violations of the physical invariants, one line per rule, naming the variable and the runs.

    Parameters
    ----------
    dataset
        A store opened lazily (:func:`pipeline.store.reading.open_store`).
    skip
        Arrays not to read (damaged ones, already reported); rules that need them are left out.
    """
    applicable = [rule for rule in rules(dataset) if not {rule.variable, *rule.needs} & set(skip)]
    if not applicable or "run" not in dataset.sizes:
        return []
    names = sorted({name for rule in applicable for name in (rule.variable, *rule.needs)} | {"run"})
    hits: list[list[np.ndarray]] = [[] for _ in applicable]
    for start, stop in _run_blocks(dataset, names):
        block = {name: np.asarray(dataset[name].isel(run=slice(start, stop)).values) for name in names}
        for found, rule in zip(hits, applicable, strict=True):
            found.append(block["run"][rule.bad(block)])
    lines = [_describe(rule, np.concatenate(found)) for found, rule in zip(hits, applicable, strict=True)]
    return [line for line in lines if line]


def _run_blocks(dataset: xr.Dataset, names: list[str]) -> list[tuple[int, int]]:
    """Slices of runs to read together: whole chunks along ``run``, at least :data:`BLOCK_RUNS` runs."""
    size = dataset.sizes["run"]
    chunk = next(
        (
            dataset[name].encoding["chunks"][dataset[name].dims.index("run")]
            for name in names
            if "run" in dataset[name].dims and "chunks" in dataset[name].encoding
        ),
        size,
    )
    step = max(chunk, 1) * max(-(-BLOCK_RUNS // max(chunk, 1)), 1)
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def _describe(rule: Rule, runs: np.ndarray) -> str:
    if runs.size == 0:
        return ""
    shown = ", ".join(str(int(run)) for run in runs[:SHOWN_RUNS])
    more = f" (first {SHOWN_RUNS} of {runs.size})" if runs.size > SHOWN_RUNS else ""
    plural = "runs" if runs.size > 1 else "run"
    return f"variable {rule.variable!r} {rule.what}: {plural} {shown}{more}"

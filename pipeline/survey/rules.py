"""Checking a survey's settings in every grid cell: the conditional settings, then the cross-setting rules.

:func:`check_settings` runs the :data:`pipeline.survey.conditional.CONDITIONAL_SETTINGS` and the
:data:`pipeline.survey.cell_rules.CELL_RULES` on every combination of the grid values they read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pipeline.survey.cell_rules import CELL_RULES
from pipeline.survey.conditional import CONDITIONAL_SETTINGS, normalised
from pipeline.survey.settings import DEFAULTS

__all__ = ["check_settings", "combos"]


def combos(names: Sequence[str], base: Mapping[str, Any], grid: Mapping[str, list]) -> Iterator[dict]:
    """Every combination of the values of ``names`` over the grid (fixed and defaults held)."""
    axes = [name for name in dict.fromkeys(names) if name in grid]
    for values in itertools.product(*(grid[axis] for axis in axes)):
        cell = {name: base[name] for name in names}
        cell.update(zip(axes, values, strict=True))
        yield cell


def _cell_context(names: Sequence[str], values: Mapping[str, Any]) -> str:
    """``name value, ...`` of the settings that define a cell, without those at their default (all at it: the last)."""
    shown = [name for name in names if values[name] != DEFAULTS[name]] or list(names[-1:])
    return ", ".join(f"{name} {values[name]!r}" for name in shown)


def check_settings(
    fixed: Mapping[str, Any], grid: Mapping[str, list], applies_elsewhere: frozenset[str] = frozenset()
) -> tuple[list[str], set[str]]:
    """Messages for every broken cross-setting rule, and the conditional settings that apply somewhere.

    ``applies_elsewhere``: conditional settings that apply in another case of the survey, so that a fixed
    value of theirs is not an error here (it resolves to None in these cells).
    """
    base = {**DEFAULTS, **fixed}

    def where(setting: str) -> str:
        if setting in grid:
            return f"grid.{setting}"
        return f"fixed.{setting}" if fixed.get(setting) is not None else setting

    messages: list[str] = []
    applies_somewhere: set[str] = set()
    for cond in CONDITIONAL_SETTINGS:
        for values in combos((cond.setting, *cond.controls), base, grid):
            value = values[cond.setting]
            if cond.test(values):
                applies_somewhere.add(cond.setting)
                if value is None and cond.required:
                    messages.append(
                        f"{cond.setting}: missing; it is required with "
                        f"{_cell_context(cond.controls, values)}; add {cond.setting} under fixed or grid"
                    )
            elif value is not None and cond.setting in grid:
                messages.append(
                    f"grid.{cond.setting}: {value!r} is not allowed with "
                    f"{_cell_context(cond.controls, values)} ({cond.setting} applies to {cond.scope}); "
                    f"remove {cond.setting} or {cond.fix}"
                )
        if fixed.get(cond.setting) is not None and cond.setting not in applies_somewhere | applies_elsewhere:
            values = next(combos(cond.controls, base, grid))
            messages.append(
                f"fixed.{cond.setting}: {fixed[cond.setting]!r} is not allowed with "
                f"{_cell_context(cond.controls, values)} ({cond.setting} applies to {cond.scope}); "
                f"remove {cond.setting} or {cond.fix}"
            )
    if messages:  # later rules would repeat these problems
        return list(dict.fromkeys(messages)), applies_somewhere
    for names, check in CELL_RULES:
        for values in combos(names, base, grid):
            for setting, text in check(normalised(values)):
                messages.append(f"{where(setting)}: {text}")
    return list(dict.fromkeys(messages)), applies_somewhere

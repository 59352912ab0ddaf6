"""Per-run random generators derived from a master seed, a stream, a seed index and the settings.

A run never draws from a generator that depends on where it sits in a shard or a batch. Its two
generators are built from a :class:`numpy.random.SeedSequence` whose entropy is the survey's master
seed and whose spawn key is ``(stream id, seed index, settings key high word, settings key low word)``:

* the **data** generator (stream ``"data"``) depends only on ``(master_seed, data settings,
  data_seed)``, so every student trained on one data set sees the very same inputs and targets;
* the **init** generator (stream ``"init"``) depends only on ``(master_seed, data + student
  settings, init_seed)``.

Hence results do not change with the shard size, the batch size, the number of workers or the
device, and adding a value to a grid axis leaves the numbers of existing runs unchanged. The caller
chooses which settings enter each key; this module only hashes what it is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np

__all__ = ["STREAM_IDS", "run_generator", "settings_key"]

STREAM_IDS: Mapping[str, int] = {"data": 0, "init": 1}
"""Spawn-key word of each random stream; never renumber (it would change every stored result)."""

_WORD = 2**32


def _canonical_value(name: str, value: object) -> object:
    """Return ``value`` as plain JSON data (tuples become lists, numpy scalars Python scalars)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_canonical_value(name, item) for item in value]
    raise ValueError(
        f"settings[{name!r}] has type {type(value).__name__}; allowed: int, float, str, bool, None "
        "and lists or tuples of these"
    )


def settings_key(settings: Mapping[str, object]) -> int:
    """Stable non-negative integer key of a mapping of setting name -> value.

    The key is the first 63 bits of the SHA-256 digest of the canonical JSON of ``settings``
    (sorted keys, no whitespace, floats written by ``repr``), so it is the same across processes,
    platforms and Python versions and does not depend on the insertion order of the mapping.
    Note that ``1`` and ``1.0`` are different values here: the caller normalises types.

    Parameters
    ----------
    settings
        Setting name -> int, float, str, bool, None, or a list or tuple of these. Numpy scalars
        are accepted and treated as the equal Python scalar.

    Returns
    -------
    int
        In ``[0, 2**63)``.
    """
    plain = {}
    for name, value in settings.items():
        if not isinstance(name, str):
            raise ValueError(f"settings keys must be str; got {name!r} of type {type(name).__name__}")
        plain[name] = _canonical_value(name, value)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _check_seed(name: str, value: int, upper: int | None) -> None:
    """Raise unless ``value`` is an int in ``[0, upper)`` (``upper=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int; got {value!r}")
    if value < 0 or (upper is not None and value >= upper):
        bound = "" if upper is None else f" and < {upper}"
        raise ValueError(f"{name} must be >= 0{bound}; got {value}")


def run_generator(
    master_seed: int, stream: str, seed_index: int, settings: Mapping[str, object]
) -> np.random.Generator:
    """Generator of one random stream of one run.

    Built as ``Generator(PCG64(SeedSequence(master_seed, spawn_key=(STREAM_IDS[stream],
    seed_index, hi, lo))))`` where ``hi, lo`` are the two 32-bit words of
    ``settings_key(settings)``.

    Parameters
    ----------
    master_seed
        The survey's master seed, a non-negative int.
    stream
        ``"data"`` (pass the data settings and the data seed index) or ``"init"`` (pass the data
        and student settings and the init seed index).
    seed_index
        The run's data or init seed index, in ``[0, 2**32)``.
    settings
        The settings this stream depends on; see :func:`settings_key`.

    Returns
    -------
    numpy.random.Generator
        A fresh PCG64 generator; equal arguments give generators producing identical draws.
    """
    if stream not in STREAM_IDS:
        raise ValueError(f"stream must be one of {sorted(STREAM_IDS)}; got {stream!r}")
    _check_seed("master_seed", master_seed, None)
    _check_seed("seed_index", seed_index, _WORD)
    key = settings_key(settings)
    spawn_key = (STREAM_IDS[stream], int(seed_index), key // _WORD, key % _WORD)
    sequence = np.random.SeedSequence(int(master_seed), spawn_key=spawn_key)
    return np.random.Generator(np.random.PCG64(sequence))

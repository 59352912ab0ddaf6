"""Given data sets: a user's file (``.npz`` or ``.csv``) or a data set that scikit-learn ships.

A given data set is read once per process (:func:`load_given`, cached on the file's path, size and
modification time) and checked before any job runs: the survey's validation calls it for every cell.
Every problem raises :class:`DataFileError` with a message that names the file (or data set) and the
fix. :func:`prepare` turns the raw arrays into the :class:`~pipeline.data.dataset.Dataset` of one run:
standardisation and the projection to principal components (fitted on the whole set, so that every
subsample sees the same inputs), the random subsample of the run's data seed, then the bias column.

The raw arrays' provenance (path, SHA-256 of the file's bytes or of the arrays, shapes) is what the
store records; :func:`provenance_problems` compares a recorded provenance with the data as it is now.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.dataset import Dataset
from pipeline.data.synthetic import append_bias

__all__ = [
    "MAX_FILE_BYTES",
    "SKLEARN_DATASETS",
    "DataFileError",
    "GivenData",
    "given_source",
    "load_given",
    "merge_provenance",
    "prepare",
    "provenance_problems",
]

MAX_FILE_BYTES = 512 * 2**20
"""Largest data file accepted: every worker holds the whole data set in memory (and on the GPU)."""

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
"""The data sets scikit-learn ships that a survey can use (``dataset:``)."""

_SUFFIXES = (".npz", ".csv")


class DataFileError(ValueError):
    """A given data set cannot be used; the message names the file or data set and the fix."""


@dataclass(frozen=True, eq=False)
class GivenData:
    """The raw arrays of a given data set and their provenance.

    Attributes
    ----------
    x : (n, d)
        Inputs, float64, finite.
    y : (n, k)
        Targets, float64, finite (one-hot class indicators for scikit-learn's classification sets).
    provenance
        ``source`` (``file`` or ``sklearn``), ``path`` or ``dataset``, ``sha256``, ``n_samples``,
        ``input_dim``, ``output_dim`` (and ``sklearn_version``): JSON-ready.
    """

    x: np.ndarray
    y: np.ndarray
    provenance: Mapping[str, Any]


def given_source(settings: Mapping[str, Any]) -> str:
    """The key naming a cell's given data set in the store's provenance: ``file:<path>`` or ``sklearn:<name>``."""
    if settings["input_distribution"] == "file":
        return f"file:{settings['data_file']}"
    return f"sklearn:{settings['dataset']}"


def load_given(settings: Mapping[str, Any]) -> GivenData:
    """The raw data set a cell names (``input_distribution`` ``file`` or ``sklearn``); read once per process.

    Raises
    ------
    DataFileError
        The file is missing, too large, of another format, or its arrays are not usable.
    """
    if settings["input_distribution"] == "file":
        path = Path(settings["data_file"])
        try:
            stat = path.stat()
        except OSError as error:
            raise DataFileError(
                f"data_file {str(path)!r}: cannot be read ({error.strerror}); give the path of an .npz or .csv "
                "file, relative to the directory the workflow runs in (the repository root)"
            ) from None
        return _load_file(str(path), settings["target_columns"], stat.st_size, stat.st_mtime_ns)
    return _load_sklearn(settings["dataset"])


@functools.lru_cache(maxsize=16)
def _load_file(path: str, target_columns: str | None, size: int, mtime_ns: int) -> GivenData:
    """Read and check a data file (``size`` and ``mtime_ns`` key the cache: an edited file is read again)."""
    name = f"data_file {path!r}"
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataFileError(f"{name}: unknown format {suffix or '(no suffix)'!r}; give an .npz or a .csv file")
    if not Path(path).is_file():
        raise DataFileError(f"{name}: is not a file; give the path of an .npz or .csv file")
    if size > MAX_FILE_BYTES:
        raise DataFileError(
            f"{name}: is {size / 2**30:.1f} GiB, above the limit of {MAX_FILE_BYTES // 2**20} MiB (every worker "
            "holds the whole data set in memory); give a smaller file or a random subset of its rows"
        )
    content = Path(path).read_bytes()
    if suffix == ".npz":
        x, y = _read_npz(name, io.BytesIO(content))
    else:
        x, y = _read_csv(name, io.BytesIO(content), target_columns)
    x, y = _checked(name, x, "x"), _checked(name, y, "y")
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2:
        raise DataFileError(f"{name}: x must be (n, d) and y (n,) or (n, k); got x {x.shape} and y {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise DataFileError(f"{name}: x has {x.shape[0]} rows but y has {y.shape[0]}; give one target row per input")
    if x.shape[0] == 0 or x.shape[1] == 0 or y.shape[1] == 0:
        raise DataFileError(f"{name}: empty (x {x.shape}, y {y.shape}); give at least one sample, input and target")
    provenance: dict[str, str | None] = {"source": "file", "path": path, "absolute_path": os.path.abspath(path)}
    if suffix == ".csv":
        provenance["target_columns"] = target_columns
    provenance["sha256"] = hashlib.sha256(content).hexdigest()
    return GivenData(x, y, {**provenance, **_shape(x, y)})


def _read_npz(name: str, content: io.BytesIO) -> tuple[Any, Any]:
    """Arrays ``x`` and ``y`` of an ``.npz`` file (no pickled objects)."""
    try:
        with np.load(content, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise DataFileError(
                    f"{name}: has no array {' or '.join(map(repr, missing))} (it holds {sorted(archive.files)}); "
                    "save the inputs as x (n, d) and the targets as y (n, k): np.savez(path, x=x, y=y)"
                )
            return archive["x"], archive["y"]
    except DataFileError:
        raise
    except (OSError, ValueError) as error:
        raise DataFileError(f"{name}: is not a readable .npz file ({error}); write it with np.savez") from None


def _read_csv(name: str, content: io.BytesIO, target_columns: str | None) -> tuple[Any, Any]:
    """Inputs (every column but the targets) and targets (``target_columns``, comma-separated names) of a CSV."""
    import pandas as pd

    if not target_columns:
        raise DataFileError(f"{name}: a .csv file needs target_columns (comma-separated names of its target columns)")
    try:
        table = pd.read_csv(content)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise DataFileError(f"{name}: is not a readable .csv file ({error})") from None
    targets = [column.strip() for column in target_columns.split(",")]
    missing = [column for column in targets if column not in table.columns]
    if missing:
        raise DataFileError(
            f"{name}: has no column {', '.join(map(repr, missing))} (columns: {list(table.columns)}); "
            "fix target_columns"
        )
    text = [str(column) for column in table.columns if not pd.api.types.is_numeric_dtype(table[column])]
    if text:
        raise DataFileError(f"{name}: column {', '.join(map(repr, text))} is not numeric; give numbers only")
    inputs = [column for column in table.columns if column not in targets]
    return table[inputs].to_numpy(), table[targets].to_numpy()


def _checked(name: str, array: Any, which: str) -> np.ndarray:
    """``array`` as float64 if it is real and finite, else a DataFileError naming ``which``."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataFileError(f"{name}: {which} has dtype {array.dtype}; give real numbers (float or int)")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        bad = int(np.size(values) - np.isfinite(values).sum())
        raise DataFileError(f"{name}: {which} holds {bad} NaN or infinite values; remove or impute them")
    return values


@functools.lru_cache(maxsize=len(SKLEARN_DATASETS))
def _load_sklearn(dataset: str) -> GivenData:
    """A data set scikit-learn ships; class labels become one-hot targets (k = number of classes)."""
    import sklearn
    from sklearn import datasets

    if dataset not in SKLEARN_DATASETS:
        raise DataFileError(f"dataset {dataset!r}: unknown; choose one of {list(SKLEARN_DATASETS)}")
    x, labels = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    x = np.asarray(x, dtype=np.float64)
    if dataset == "diabetes":
        y = np.asarray(labels, dtype=np.float64)[:, None]
    else:
        classes = np.unique(labels)
        y = (np.asarray(labels)[:, None] == classes[None, :]).astype(np.float64)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    provenance = {"source": "sklearn", "dataset": dataset, "sklearn_version": sklearn.__version__, "sha256": digest}
    return GivenData(x, y, {**provenance, **_shape(x, y)})


def _shape(x: np.ndarray, y: np.ndarray) -> dict[str, int]:
    return {"n_samples": int(x.shape[0]), "input_dim": int(x.shape[1]), "output_dim": int(y.shape[1])}


def prepare(rng: np.random.Generator, settings: Mapping[str, Any]) -> Dataset:
    """The data set one run trains on, from its cell's given data and its data generator.

    Order: standardise the inputs (zero mean, unit variance per column; constant columns are only
    centred), project them onto their first ``input_dim`` principal components (``projection: pca``),
    draw the subsample (``subsample`` rows without replacement, in file order; the only draw), append
    the bias column.

    Parameters
    ----------
    rng
        The run's data generator; used only for the subsample.
    settings
        The run's settings (``scaling``, ``projection``, ``input_dim``, ``subsample``, ``bias``).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    given = load_given(settings)
    x = given.x
    if settings["scaling"] == "standardize":
        x = StandardScaler().fit_transform(x)
    if settings["projection"] == "pca":
        x = PCA(n_components=settings["input_dim"], svd_solver="full").fit_transform(x)
    y = given.y
    if settings["subsample"] is not None:
        rows = np.sort(rng.choice(x.shape[0], size=settings["subsample"], replace=False))
        x, y = x[rows], y[rows]
    if settings["bias"]:
        x = append_bias(x)
    return Dataset(x=np.ascontiguousarray(x, dtype=np.float64), y=np.array(y, dtype=np.float64))


def merge_provenance(records: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]]:
    """One provenance per data set from several (the shards'); a ValueError if a data set's hash differs."""
    merged: dict[str, Mapping[str, Any]] = {}
    for record in records:
        for key, provenance in record.items():
            first = merged.setdefault(key, provenance)
            if first["sha256"] != provenance["sha256"]:
                raise ValueError(
                    f"{key}: the data changed between shards (sha256 {first['sha256']} and {provenance['sha256']});"
                    " delete the shards computed on the old data and run the workflow again"
                )
    return merged


def provenance_problems(recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Given data sets whose content differs from the provenance a store recorded (empty: all unchanged).

    Parameters
    ----------
    recorded
        Source key (:func:`given_source`) -> the provenance recorded when the store was computed.
    """
    problems = []
    for key, record in recorded.items():
        settings = _settings_of(record)
        try:
            now = load_given(settings).provenance
        except DataFileError as error:
            problems.append(f"{key}: the data cannot be checked against the store ({error})")
            continue
        if now["sha256"] != record.get("sha256"):
            problems.append(
                f"{key}: the data changed since the store was computed (sha256 {record.get('sha256')} then, "
                f"{now['sha256']} now); restore the data or run the survey again"
            )
    return problems


def _settings_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that name the data set of a recorded provenance (a moved store: its absolute path)."""
    if record.get("source") == "sklearn":
        return {"input_distribution": "sklearn", "dataset": record.get("dataset")}
    path = record.get("path", "")
    if not Path(path).exists() and record.get("absolute_path"):
        path = record["absolute_path"]
    return {"input_distribution": "file", "data_file": path, "target_columns": record.get("target_columns")}

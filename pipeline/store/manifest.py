"""The manifest of a store: the hash of every chunk and of every array's metadata, as written.

Every array of a shard store and of the survey store is written with the codecs of
:func:`pipeline.store.schema.compressors`: zstd, then a CRC-32C of the compressed bytes, so zarr refuses a
chunk whose bytes changed. A CRC cannot tell one intact chunk from another (two chunks swapped, a
chunk copied from another array), so :func:`pipeline.store.writing.write_atomic` also records a manifest in
the store's metadata, as the attributes of a group ``_manifest`` beside the arrays (xarray does not
show it): the SHA-256 and size of every chunk under its key, a hash of every array's metadata
(shape, chunks, data type, codecs, fill value; not its attributes), and hashes of the resolved survey
and of the plan. :mod:`pipeline.store.damage` compares a store with its manifest and
:mod:`pipeline.store.reading` verifies every chunk as it is read.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

__all__ = [
    "MANIFEST_GROUP",
    "SURVEY_ATTR",
    "ArrayRecord",
    "DamagedStore",
    "Manifest",
    "UnverifiedStoreWarning",
    "build_manifest",
    "digest",
    "metadata_digest",
    "plan_digest",
    "read_json",
    "read_manifest",
    "run_chunk",
    "stored_attrs",
    "text_digest",
    "write_manifest",
    "zarr_array",
]

MANIFEST_GROUP = "_manifest"
"""The group (a ``zarr.json`` with attributes only) that holds a store's manifest."""
MANIFEST_FORMAT = 1
ALGORITHM = "sha256"
SURVEY_ATTR = "resolved_survey_json"
"""The store attribute whose hash the manifest records as the resolved survey."""


class DamagedStore(ValueError):
    """A store's bytes differ from what was written: a chunk changed, went missing, or was swapped."""


class UnverifiedStoreWarning(UserWarning):
    """A store written before checksums: its chunks cannot be verified."""


@dataclass(frozen=True)
class ArrayRecord:
    """What the manifest records of one array."""

    dims: tuple[str, ...]
    metadata: str
    chunks: dict[str, tuple[int, str]]
    """{chunk key inside the array (``c/0/0``): (size in bytes, SHA-256)}."""


@dataclass(frozen=True)
class Manifest:
    """Hashes of a store, as written; see the module docstring."""

    arrays: dict[str, ArrayRecord]
    survey: str | None = None
    plan: str | None = None
    run_chunks: tuple[tuple[int, int, tuple[int, ...]], ...] = ()
    """Per chunk along ``run``: first run, last run, and the shards these runs come from."""

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object stored in the ``_manifest`` group's attributes."""
        return {
            "format": MANIFEST_FORMAT,
            "algorithm": ALGORITHM,
            "arrays": {
                name: {"dims": list(record.dims), "metadata": record.metadata, "chunks": record.chunks}
                for name, record in sorted(self.arrays.items())
            },
            "resolved_survey": self.survey,
            "plan": self.plan,
            "run_chunks": [[first, last, list(shards)] for first, last, shards in self.run_chunks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse the stored JSON object (the inverse of :meth:`to_json`)."""
        if data.get("format") != MANIFEST_FORMAT or data.get("algorithm") != ALGORITHM:
            raise ValueError(f"manifest format {data.get('format')}/{data.get('algorithm')} is not known")
        arrays = {
            name: ArrayRecord(
                tuple(record["dims"]),
                record["metadata"],
                {key: (int(size), hashed) for key, (size, hashed) in record["chunks"].items()},
            )
            for name, record in data["arrays"].items()
        }
        chunks = tuple((int(first), int(last), tuple(shards)) for first, last, shards in data.get("run_chunks", []))
        return cls(arrays, data.get("resolved_survey"), data.get("plan"), chunks)

    def expected(self) -> dict[str, tuple[int, str]]:
        """{store key (``loss_final/c/0``): (size, SHA-256)} of every chunk."""
        return {f"{name}/{key}": entry for name, record in self.arrays.items() for key, entry in record.chunks.items()}


def digest(data: bytes | memoryview) -> str:
    """The manifest's hash of some bytes (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


def text_digest(text: str) -> str:
    """The hash of a text attribute (UTF-8)."""
    return digest(text.encode("utf-8"))


def plan_digest(plan: pd.DataFrame) -> str:
    """A hash of a plan's rows: column names, dtypes and values, in column order.

    Numbers hash as their little-endian bytes, anything else as its text, so the digest depends on
    the plan alone, not on the pandas version.
    """
    hasher = hashlib.sha256()
    for name in plan.columns:
        column = plan[name]
        hasher.update(f"{name}:{column.dtype}\n".encode())
        hasher.update(_column_bytes(column))
    return hasher.hexdigest()


def _column_bytes(column: pd.Series) -> bytes:
    """A plan column as bytes: numbers little-endian (missing ones NaN), anything else as text."""
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64 if column.hasnans else None, na_value=np.nan)
        if values.dtype.kind in "biuf":
            return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
    return "\x1f".join(str(value) for value in column.tolist()).encode("utf-8")  # NaN in a text column: "nan"


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (a ``zarr.json``)."""
    return json.loads(path.read_text(encoding="utf-8"))


def metadata_digest(metadata: Mapping[str, Any]) -> str:
    """Hash of an array's metadata without its attributes (what decoding the chunks depends on)."""
    decoding = {key: value for key, value in metadata.items() if key != "attributes"}
    return text_digest(json.dumps(decoding, sort_keys=True))


def _chunk_keys(array: zarr.Array) -> Iterator[str]:
    """Keys of every chunk of ``array`` inside the array (``c/0/1``), from its metadata."""
    for index in product(*(range(n) for n in array.cdata_shape)):
        yield array.metadata.encode_chunk_key(index)


def build_manifest(
    path: str | Path, *, survey: str | None = None, plan: str | None = None, run_chunk: int | None = None
) -> Manifest:
    """Hash every chunk of the store at ``path`` (a full read of its files).

    Parameters
    ----------
    path
        A zarr v3 store on the local disk.
    survey, plan
        Digests of the resolved survey (:func:`text_digest`) and the plan (:func:`plan_digest`).
    run_chunk
        Runs per chunk along ``run``; with it the manifest records which runs and shards each chunk
        holds (read from the ``run`` and ``shard`` coordinates), for the advice in error messages.
    """
    path = Path(path)
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    arrays = {}
    for name, array in sorted(group.arrays()):
        chunks = {}
        for key in _chunk_keys(array):
            data = (path / name / key).read_bytes()
            chunks[key] = (len(data), digest(data))
        metadata = read_json(path / name / "zarr.json")
        arrays[name] = ArrayRecord(tuple(metadata.get("dimension_names") or ()), metadata_digest(metadata), chunks)
    runs = _run_chunks(group, run_chunk) if run_chunk else ()
    return Manifest(arrays, survey, plan, runs)


def _run_chunks(group: zarr.Group, run_chunk: int) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """(first run, last run, shards) of each chunk along ``run``."""
    names = set(group.array_keys())
    if "run" not in names:
        return ()
    runs = np.asarray(zarr_array(group, "run")[:])
    shards = np.asarray(zarr_array(group, "shard")[:]) if "shard" in names else np.full(len(runs), -1)
    out = []
    for start in range(0, len(runs), run_chunk):
        block = slice(start, start + run_chunk)
        known = sorted({int(shard) for shard in shards[block] if shard >= 0})
        out.append((int(runs[block].min()), int(runs[block].max()), tuple(known)))
    return tuple(out)


def run_chunk(path: str | Path) -> int | None:
    """Runs per chunk of the ``run`` coordinate of the store at ``path`` (None without one)."""
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    return int(zarr_array(group, "run").chunks[0]) if "run" in group.array_keys() else None


def zarr_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (a :class:`KeyError` if it is a group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise KeyError(f"{name!r} is a group, not an array")
    return node


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    """Store ``manifest`` in the store at ``path`` and consolidate its metadata again."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        if MANIFEST_GROUP in root:
            del root[MANIFEST_GROUP]
        root.create_group(MANIFEST_GROUP, attributes={"manifest": manifest.to_json()})
        zarr.consolidate_metadata(str(path))


def read_manifest(path: str | Path) -> Manifest | None:
    """The store's manifest, or None for a store written before manifests.

    Raises
    ------
    DamagedStore
        If the manifest is there but cannot be read.
    """
    location = Path(path) / MANIFEST_GROUP / "zarr.json"
    if not location.exists():
        return None
    try:
        return Manifest.from_json(read_json(location)["attributes"]["manifest"])
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedStore(
            f"{path}: the manifest ({location}) cannot be read ({error}); recompute the store"
            " (re-run `landscape collect`, or the workflow)"
        ) from error


def stored_attrs(path: str | Path) -> dict[str, Any]:
    """A store's attributes, read from its root ``zarr.json`` ({} when unreadable)."""
    try:
        return dict(read_json(Path(path) / "zarr.json").get("attributes", {}))
    except (OSError, ValueError):
        return {}

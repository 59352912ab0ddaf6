"""Integrity of stores: a checksum in every chunk, a manifest of chunk hashes, reads that verify.

Every array of a shard store and of the survey store is written with the codecs of
:func:`pipeline.schema.compressors`: zstd, then a CRC-32C of the compressed bytes, so zarr refuses a
chunk whose bytes changed. A CRC cannot tell one intact chunk from another (two chunks swapped, a
chunk copied from another array), so :func:`pipeline.store.write_atomic` also records a manifest in
the store's metadata, as the attributes of a group ``_manifest`` beside the arrays (xarray does not
show it): the SHA-256 and size of every chunk under its key, a hash of every array's metadata
(shape, chunks, data type, codecs, fill value; not its attributes), and hashes of the resolved survey
and of the plan.

:func:`open_verified` opens a store through :class:`VerifiedStore`, which hashes every chunk as it
is read and raises :class:`DamagedStore`, naming the array, the chunk, the store and how to recompute
it, instead of handing out numbers from a chunk that is not the one that was written.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import AsyncGenerator, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore, WrapperStore

__all__ = [
    "MANIFEST_GROUP",
    "DamagedStore",
    "Manifest",
    "Problem",
    "UnverifiedStoreWarning",
    "VerifiedStore",
    "build_manifest",
    "chunk_problems",
    "decode_problems",
    "metadata_problems",
    "numeric_arrays",
    "open_verified",
    "plan_digest",
    "read_manifest",
    "recompute_advice",
    "run_chunk",
    "stored_attrs",
    "text_digest",
    "write_manifest",
]

MANIFEST_GROUP = "_manifest"
"""The group (a ``zarr.json`` with attributes only) that holds a store's manifest."""
MANIFEST_FORMAT = 1
ALGORITHM = "sha256"
SURVEY_ATTR = "resolved_survey_json"
"""The store attribute whose hash the manifest records as the resolved survey."""


class Problem(NamedTuple):
    """One problem found in a store: the array, the chunk key inside it ("" if none), and the text."""

    array: str
    chunk: str
    text: str


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


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _metadata_digest(metadata: Mapping[str, Any]) -> str:
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
        metadata = _json(path / name / "zarr.json")
        arrays[name] = ArrayRecord(tuple(metadata.get("dimension_names") or ()), _metadata_digest(metadata), chunks)
    runs = _run_chunks(group, run_chunk) if run_chunk else ()
    return Manifest(arrays, survey, plan, runs)


def _run_chunks(group: zarr.Group, run_chunk: int) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
    """(first run, last run, shards) of each chunk along ``run``."""
    names = set(group.array_keys())
    if "run" not in names:
        return ()
    runs = np.asarray(_array(group, "run")[:])
    shards = np.asarray(_array(group, "shard")[:]) if "shard" in names else np.full(len(runs), -1)
    out = []
    for start in range(0, len(runs), run_chunk):
        block = slice(start, start + run_chunk)
        known = sorted({int(shard) for shard in shards[block] if shard >= 0})
        out.append((int(runs[block].min()), int(runs[block].max()), tuple(known)))
    return tuple(out)


def run_chunk(path: str | Path) -> int | None:
    """Runs per chunk of the ``run`` coordinate of the store at ``path`` (None without one)."""
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    return int(_array(group, "run").chunks[0]) if "run" in group.array_keys() else None


def _array(group: zarr.Group, name: str) -> zarr.Array:
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
        return Manifest.from_json(_json(location)["attributes"]["manifest"])
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedStore(
            f"{path}: the manifest ({location}) cannot be read ({error}); recompute the store"
            " (re-run `landscape collect`, or the workflow)"
        ) from error


def chunk_location(manifest: Manifest, name: str, key: str) -> str:
    """``array 'loss_final', chunk 'loss_final/c/0' (runs 0-7)``: the chunk, with its runs when known."""
    text = f"array {name!r}, chunk {f'{name}/{key}'!r}"
    run_index = _run_chunk_index(manifest, name, key)
    if run_index is not None:
        first, last, _ = manifest.run_chunks[run_index]
        text += f" (runs {first}-{last})"
    return text


def _run_chunk_index(manifest: Manifest, name: str, key: str) -> int | None:
    record = manifest.arrays.get(name)
    if record is None or "run" not in record.dims:
        return None
    index = [int(part) for part in re.findall(r"\d+", key)]
    position = record.dims.index("run")
    if position >= len(index) or index[position] >= len(manifest.run_chunks):
        return None
    return index[position]


def recompute_advice(path: str | Path, manifest: Manifest, name: str, key: str, attrs: Mapping[str, Any]) -> str:
    """How to recompute a chunk: which shard and which command, for survey and shard stores.

    Paths follow the Snakefile's grammar: ``results/<survey>/survey.zarr`` and
    ``results/<survey>/shards/shard-KKKK.zarr``.
    """
    path = Path(path)
    if "shard" in attrs:  # a shard store
        survey = path.parent.parent.name if path.parent.name == "shards" else "NAME"
        return (
            f"recompute it: delete {path} and re-run the workflow (`snakemake --profile profiles/default"
            f" --config survey={survey}` recomputes this shard alone), or run `landscape simulate"
            f" results/{survey}/survey.resolved.yaml --shard {attrs['shard']} --out {path}`"
        )
    survey = attrs.get("survey", "NAME")
    collect = (
        f"re-run `landscape collect` (or the workflow: `snakemake --profile profiles/default --config survey={survey}`)"
    )
    run_index = _run_chunk_index(manifest, name, key)
    shards = manifest.run_chunks[run_index][2] if run_index is not None else ()
    if not shards:
        return f"recompute the store from its shards: {collect}"
    listed = ", ".join(str(path.parent / "shards" / f"shard-{shard:04d}.zarr") for shard in shards)
    return (
        f"recompute it from shard{'s' if len(shards) > 1 else ''} {', '.join(map(str, shards))} ({listed}):"
        f" {collect}; if `landscape validate` finds that shard damaged too, delete it first so that the"
        " workflow recomputes it"
    )


def stored_attrs(path: str | Path) -> dict[str, Any]:
    """A store's attributes, read from its root ``zarr.json`` ({} when unreadable)."""
    try:
        return dict(_json(Path(path) / "zarr.json").get("attributes", {}))
    except (OSError, ValueError):
        return {}


def metadata_problems(path: str | Path, manifest: Manifest) -> list[Problem]:
    """What the metadata and the file sizes show, without reading any chunk.

    Each array's metadata (its ``zarr.json`` and the consolidated copy readers use) must hash as
    recorded, every array must be in the manifest, and every chunk file must have its recorded size.
    Missing files are left to :func:`chunk_problems` and the truncation check of :mod:`pipeline.store`.
    """
    path = Path(path)
    problems = []
    consolidated = _json(path / "zarr.json").get("consolidated_metadata", {}).get("metadata", {})
    on_disk = {child.name for child in path.iterdir() if (child / "zarr.json").is_file()} - {MANIFEST_GROUP}
    listed = {name for name, node in consolidated.items() if node.get("node_type") == "array"}
    for name in sorted((on_disk | listed) - set(manifest.arrays)):
        problems.append(Problem(name, "", f"array {name!r} is not in the manifest (added after the store was written)"))
    for name, record in sorted(manifest.arrays.items()):
        file = path / name / "zarr.json"
        copies = {"zarr.json": _json(file) if file.is_file() else None, "consolidated metadata": consolidated.get(name)}
        for where, metadata in copies.items():
            if metadata is not None and _metadata_digest(metadata) != record.metadata:
                what = f"its {where} (shape, chunks, data type or codecs) differs from the manifest"
                problems.append(Problem(name, "", f"array {name!r}: {what}"))
        problems += _size_problems(path, manifest, name, record)
    return problems


def _size_problems(path: Path, manifest: Manifest, name: str, record: ArrayRecord) -> list[Problem]:
    problems = []
    for key, (size, _) in record.chunks.items():
        file = path / name / key
        if file.is_file() and file.stat().st_size != size:
            what = f"{file.stat().st_size:,} bytes on disk, {size:,} in the manifest"
            problems.append(Problem(name, key, f"{chunk_location(manifest, name, key)}: {what}"))
    return problems


def chunk_problems(path: str | Path, manifest: Manifest) -> list[Problem]:
    """Read and hash every chunk: one problem per chunk that is missing or differs from the manifest.

    A chunk of the wrong size is left to :func:`metadata_problems`, which reports it without reading it.
    """
    path = Path(path)
    problems = []
    for name, record in sorted(manifest.arrays.items()):
        for key, (size, expected) in record.chunks.items():
            file = path / name / key
            if not file.is_file():
                problems.append(Problem(name, key, f"{chunk_location(manifest, name, key)}: the chunk is missing"))
                continue
            if file.stat().st_size != size:
                continue
            if digest(file.read_bytes()) != expected:
                what = "its content differs from the manifest"
                problems.append(Problem(name, key, f"{chunk_location(manifest, name, key)}: {what}"))
    return problems


def damage_message(path: str | Path, manifest: Manifest, key: str, what: str) -> str:
    """One line for a damaged chunk read: the store, the array, the chunk, what is wrong, what to do."""
    name, inner = key.split("/", 1)
    advice = recompute_advice(path, manifest, name, inner, stored_attrs(path))
    return f"{path}: {chunk_location(manifest, name, inner)}: {what} (damaged on disk or in a copy); {advice}"


class VerifiedStore(WrapperStore[LocalStore]):
    """A read-only local store that checks every chunk it returns against the manifest.

    Keys that are not chunks in the manifest (metadata) pass through unchanged. A chunk whose size
    or SHA-256 differs, or that is missing, raises :class:`DamagedStore`.
    """

    def __init__(self, store: LocalStore, manifest: Manifest, path: str | Path) -> None:
        super().__init__(store)
        self._manifest = manifest
        self._path = str(path)
        self._expected = manifest.expected()

    def _with_store(self, store: LocalStore) -> VerifiedStore:
        return type(self)(store, self._manifest, self._path)

    def __str__(self) -> str:
        return f"verified-{self._store}"

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        expected = self._expected.get(key)
        if expected is None:
            return await self._store.get(key, prototype, byte_range)
        buffer = await self._store.get(key, prototype)
        self._verify(key, buffer, expected)
        return buffer if byte_range is None else await self._store.get(key, prototype, byte_range)

    def _verify(self, key: str, buffer: Buffer | None, expected: tuple[int, str]) -> None:
        if buffer is None:
            raise DamagedStore(damage_message(self._path, self._manifest, key, "the chunk is missing"))
        data = buffer.as_numpy_array().data
        size, hashed = expected
        if data.nbytes != size or digest(data) != hashed:
            raise DamagedStore(damage_message(self._path, self._manifest, key, "its content differs from the manifest"))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)


def open_verified(path: str | Path, manifest: Manifest | None, **options: Any) -> xr.Dataset:
    """``xarray.open_zarr`` through a :class:`VerifiedStore` (a plain open without a manifest).

    ``options`` go to :func:`xarray.open_zarr` (``chunks``, ...); metadata is read consolidated.
    """
    if manifest is None:
        return xr.open_zarr(str(path), consolidated=True, **options)
    store = VerifiedStore(LocalStore(str(path), read_only=True), manifest, path)
    return xr.open_zarr(store, consolidated=True, **options)


def numeric_arrays(path: str | Path, names: Collection[str]) -> set[str]:
    """Those of ``names`` that are arrays of numbers or booleans (fixed-size items, not strings)."""
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    arrays = set(group.array_keys())
    return {name for name in names if name in arrays and np.dtype(_array(group, name).dtype).kind in "biufc"}


def decode_problems(path: str | Path, names: Collection[str] | None = None) -> list[Problem]:
    """Decode every chunk of every array (the full read of a store without a manifest), or of ``names``:
    one problem per chunk that zarr cannot decode (a failed CRC or decompression)."""
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    problems = []
    empty = Manifest({})
    for name, array in sorted(group.arrays()):
        if names is not None and name not in names:
            continue
        for index in product(*(range(n) for n in array.cdata_shape)):
            try:
                array.get_block_selection(index)
            except Exception as error:  # noqa: BLE001  (any decoding failure is damage to report)
                key = array.metadata.encode_chunk_key(index)
                problems.append(
                    Problem(name, key, f"{chunk_location(empty, name, key)}: it cannot be decoded ({error})")
                )
    return problems

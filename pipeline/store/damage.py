"""Damage to a store: chunks and metadata unlike its manifest, chunks that cannot be decoded or are missing.

Each problem names the array and the chunk and, through :func:`recompute_advice`, which shard and which
command recompute it. :func:`pipeline.store.validation.validate` reports them; the reads of
:mod:`pipeline.store.reading` raise them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Mapping
from itertools import product
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zarr

from pipeline.store.manifest import (
    MANIFEST_GROUP,
    ArrayRecord,
    Manifest,
    digest,
    metadata_digest,
    read_json,
    stored_attrs,
    zarr_array,
)

__all__ = [
    "Problem",
    "chunk_location",
    "chunk_problems",
    "damage_message",
    "decode_problems",
    "metadata_problems",
    "numeric_arrays",
    "recompute_advice",
    "truncation_problems",
]


class Problem(NamedTuple):
    """One problem found in a store: the array, the chunk key inside it ("" if none), and the text."""

    array: str
    chunk: str
    text: str


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


def metadata_problems(path: str | Path, manifest: Manifest) -> list[Problem]:
    """What the metadata and the file sizes show, without reading any chunk.

    Each array's metadata (its ``zarr.json`` and the consolidated copy readers use) must hash as
    recorded, every array must be in the manifest, and every chunk file must have its recorded size.
    Missing files are left to :func:`chunk_problems` and :func:`truncation_problems`.
    """
    path = Path(path)
    problems = []
    consolidated = read_json(path / "zarr.json").get("consolidated_metadata", {}).get("metadata", {})
    on_disk = {child.name for child in path.iterdir() if (child / "zarr.json").is_file()} - {MANIFEST_GROUP}
    listed = {name for name, node in consolidated.items() if node.get("node_type") == "array"}
    for name in sorted((on_disk | listed) - set(manifest.arrays)):
        problems.append(Problem(name, "", f"array {name!r} is not in the manifest (added after the store was written)"))
    for name, record in sorted(manifest.arrays.items()):
        file = path / name / "zarr.json"
        copies = {
            "zarr.json": read_json(file) if file.is_file() else None,
            "consolidated metadata": consolidated.get(name),
        }
        for where, metadata in copies.items():
            if metadata is not None and metadata_digest(metadata) != record.metadata:
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


def numeric_arrays(path: str | Path, names: Collection[str]) -> set[str]:
    """Those of ``names`` that are arrays of numbers or booleans (fixed-size items, not strings)."""
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    arrays = set(group.array_keys())
    return {name for name in names if name in arrays and np.dtype(zarr_array(group, name).dtype).kind in "biufc"}


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


def truncation_problems(path: str | Path) -> list[str]:
    """Arrays whose metadata or chunks are missing on disk (the consolidated metadata hides both)."""
    try:
        with warnings.catch_warnings():  # Snakemake leaves a .snakemake_timestamp file in directory outputs
            warnings.filterwarnings("ignore", message="Object at", category=UserWarning)
            group = zarr.open_group(str(path), mode="r", use_consolidated=False)
            on_disk = dict(group.arrays())
        listed = set(zarr.open_group(str(path), mode="r", use_consolidated=True).array_keys())
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        return [f"cannot read the arrays of {path}: {error}"]
    problems = [f"array {name!r} has no metadata (zarr.json) on disk" for name in sorted(listed - set(on_disk))]
    for name, array in sorted(on_disk.items()):
        if array.nchunks_initialized != array.nchunks:
            problems.append(f"array {name!r} has {array.nchunks_initialized} of {array.nchunks} chunks on disk")
    return problems

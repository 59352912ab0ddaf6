"""Reading stores: every chunk is verified against the manifest as it is read.

:func:`open_store` refuses a store of another schema version and, by default, an incomplete one;
:class:`VerifiedStore` hashes every chunk it hands to zarr and raises :class:`DamagedStore`, naming the
array, the chunk, the store and how to recompute it, instead of handing out numbers from a chunk that is
not the one that was written.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any

import xarray as xr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore, WrapperStore

from pipeline.store.damage import damage_message, metadata_problems, recompute_advice, truncation_problems
from pipeline.store.manifest import DamagedStore, Manifest, UnverifiedStoreWarning, digest, read_manifest, stored_attrs
from pipeline.store.schema import SCHEMA_VERSION

__all__ = ["VerifiedStore", "open_current_schema", "open_store", "open_verified"]


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


def open_store(path: str | Path, *, check_complete: bool = True, **options: Any) -> xr.Dataset:
    """Open a store lazily; every chunk is checked against the manifest as it is read.

    A store written by another schema version is an error, and so (with ``check_complete``) is a
    store with missing arrays or chunks, chunk files of the wrong size, or array metadata that
    differs from the manifest: zarr would read missing chunks as fill values and every rate computed
    from them would be wrong. A store without a manifest (written before checksums) opens with an
    :class:`UnverifiedStoreWarning`. ``options`` go to :func:`xarray.open_zarr` (``chunks``, ...).

    Raises
    ------
    DamagedStore
        When a chunk that is read differs from the manifest (raised by the read, not by the open).
    """
    manifest = read_manifest(path)
    if check_complete:
        _refuse_incomplete(path, manifest)
    if manifest is None:
        warnings.warn(
            UnverifiedStoreWarning(
                f"{path}: written before checksums, its chunks cannot be verified; run"
                f" `landscape validate {path} --rehash` to read it in full and add a manifest"
            ),
            stacklevel=2,
        )
    return open_current_schema(path, manifest, **options)


def open_current_schema(path: str | Path, manifest: Manifest | None, **options: Any) -> xr.Dataset:
    """Open through :func:`open_verified`; refuse a store written by another schema version."""
    dataset = open_verified(path, manifest, **options)
    version = dataset.attrs.get("schema_version")
    if version is not None and int(version) != SCHEMA_VERSION:
        why = (
            " (version 2 added the end game and the limit/resolution verdicts, which this store lacks)"
            if int(version) < SCHEMA_VERSION
            else " (a newer package wrote it)"
        )
        raise ValueError(
            f"{path}: store schema version {version}, this package reads version {SCHEMA_VERSION}{why}; recompute"
            " it with this version (remove the survey's results folder results/<name> and run `bash run.sh survey"
            " <name>`) or read it with the package version that wrote it"
        )
    return dataset


def _refuse_incomplete(path: str | Path, manifest: Manifest | None) -> None:
    """Raise :class:`DamagedStore` for missing arrays or chunks, or metadata and sizes unlike the manifest."""
    advice = recompute_advice(path, Manifest({}), "", "", stored_attrs(path))
    missing = truncation_problems(path)
    if missing:
        raise DamagedStore(
            f"{path}: the store is incomplete ({missing[0]}{'; ...' if len(missing) > 1 else ''});"
            f" run `landscape validate {path}`, then {advice}"
        )
    damaged = [problem.text for problem in metadata_problems(path, manifest)] if manifest else []
    if damaged:
        raise DamagedStore(
            f"{path}: the store is damaged ({damaged[0]}{'; ...' if len(damaged) > 1 else ''});"
            f" run `landscape validate {path}`, then {advice}"
        )

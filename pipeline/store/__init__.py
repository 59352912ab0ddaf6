"""The zarr store: result records <-> xarray Datasets <-> zarr stores, checked on every read.

One module per job:

* :mod:`~pipeline.store.schema`: every variable of the store with its dimensions and attributes;
* :mod:`~pipeline.store.writing`: records to Datasets, Datasets to stores (written aside, then renamed);
* :mod:`~pipeline.store.gathering`: shard stores to the survey store, with the shards' provenance;
* :mod:`~pipeline.store.derived`: the survey-wide variables the collect step derives (global or spurious,
  outcome, neuron counts);
* :mod:`~pipeline.store.manifest`: the hashes of every chunk, written with each store;
* :mod:`~pipeline.store.damage`: chunks and metadata unlike the manifest, missing or undecodable chunks;
* :mod:`~pipeline.store.reading`: :func:`open_store`, which verifies every chunk as it is read;
* :mod:`~pipeline.store.invariants`: the physical invariants of a store's numbers;
* :mod:`~pipeline.store.validation`: :func:`validate` and :func:`rehash`.
"""

from pipeline.store.gathering import CODE_ATTRS, SHARD_ATTRS, gather, shard_provenance
from pipeline.store.manifest import DamagedStore, UnverifiedStoreWarning
from pipeline.store.reading import open_store
from pipeline.store.schema import SCHEMA_VERSION, VARIABLES
from pipeline.store.validation import rehash, validate
from pipeline.store.writing import record_to_dataset, temporary_path, write_atomic

__all__ = [
    "CODE_ATTRS",
    "SCHEMA_VERSION",
    "SHARD_ATTRS",
    "VARIABLES",
    "DamagedStore",
    "UnverifiedStoreWarning",
    "gather",
    "open_store",
    "record_to_dataset",
    "rehash",
    "shard_provenance",
    "temporary_path",
    "validate",
    "write_atomic",
]

"""Cost of store integrity (checksums, manifest, full validate), measured side by side in one run (not a test).

On the 100,000-run survey of ``bench_workflow.py --only scale`` (surveys/tiny.yaml, 200 steps, 10
shards of 10,000 runs), simulated with ``landscape simulate`` and collected with ``landscape collect``:

(a) writing the survey store: the dataset (in memory) written with zarr's default codecs (zstd, as
    before issue 17) versus the checksummed codecs (zstd + CRC-32C), and the manifest (hashing every
    chunk file) on top;
(b) reading every array back: plain ``xarray.open_zarr`` of the unchecked copy versus
    ``open_survey`` of the checked store (a CRC per chunk, a SHA-256 per chunk);
(c) ``validate``: ``--quick`` (metadata and file sizes), and the full check (every chunk hashed, the
    physical invariants), split into its parts.

Each timing is the median of ``--repeats`` (default 3) runs in this process, in wall-clock seconds or,
with ``--clock cpu``, in CPU seconds of this process (all its threads), which a busy machine disturbs less.

    python benchmarks/bench_store.py                       # simulates 10 shards first (minutes)
    python benchmarks/bench_store.py --keep /dev/shm/scale # keeps (and later reuses) the shards there
    python benchmarks/bench_store.py --quick               # 10,000 runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import xarray as xr
from bench_workflow import step, tiny_variant

from pipeline.store import open_store, validate, write_atomic
from pipeline.store.damage import chunk_problems
from pipeline.store.invariants import invariant_problems
from pipeline.store.manifest import MANIFEST_GROUP, build_manifest, read_manifest
from pipeline.store.schema import compressors
from pipeline.survey import load_survey
from pipeline.survey.plan import make_plan, n_shards

MIB = 2**20


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def timed(function: Callable[[], object], repeats: int) -> float:
    """Median time of ``function`` over ``repeats`` calls, on :data:`clock`."""
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return statistics.median(times)


def disk_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def survey_store(folder: Path, quick: bool) -> tuple[Path, Path]:
    """Plan, simulate and collect the scale survey in ``folder`` (reused when its store exists)."""
    init_seeds = 2_500 if quick else 25_000
    survey_path = tiny_variant(
        folder, "scale", max_steps=200, init_seeds=init_seeds, shard_size=10_000 if not quick else 2_500, batch_size=500
    )
    results = folder / "results" / "scale"
    store = results / "survey.zarr"
    if store.exists():
        print(f"reusing {store}")
        return survey_path, store
    total = n_shards(make_plan(load_survey(survey_path)))
    shards = []
    for shard in range(total):
        out = results / "shards" / f"shard-{shard:04d}.zarr"
        if not out.exists():
            argv = ["simulate", str(survey_path), "--shard", str(shard), "--out", str(out), "--threads", "2"]
            wall, _ = step(argv, folder / f"simulate-{shard}.log")
            print(f"    simulate shard {shard}: {wall:.1f} s", flush=True)
        shards.append(str(out))
    wall, usage = step(["collect", str(survey_path), *shards, "--out", str(store)], folder / "collect.log")
    print(
        f"    landscape collect (checked shard reads, checksummed write, manifest): {wall:.1f} s,"
        f" peak RSS {usage['self_kib'] / 2**20:.2f} GiB"
    )
    return survey_path, store


def write_encoded(dataset: xr.Dataset, path: Path, chunk: int, codecs: tuple | None) -> None:
    """``to_zarr`` with chunks of ``chunk`` runs and ``codecs`` (None: zarr's default zstd, as before
    issue 17); no manifest."""
    shutil.rmtree(path, ignore_errors=True)
    encoding = {}
    for name in dataset.variables:
        encoding[name] = {} if codecs is None else {"compressors": codecs}
        if "run" in dataset[name].dims:
            sizes = dataset[name].sizes.items()
            encoding[name]["chunks"] = tuple(chunk if dim == "run" else size for dim, size in sizes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(path, mode="w", encoding=encoding, consolidated=True, zarr_format=3, write_empty_chunks=True)


def write_checked(dataset: xr.Dataset, path: Path, chunk: int) -> None:
    """The survey store as written now: :func:`pipeline.store.writing.write_atomic` (codecs, manifest, rename)."""
    shutil.rmtree(path, ignore_errors=True)
    write_atomic(dataset, path, chunk_runs=chunk)


def read_all(dataset: xr.Dataset) -> None:
    for name in dataset.variables:
        dataset[name].values  # noqa: B018


def bench(folder: Path, quick: bool, repeats: int) -> None:
    survey_path, store = survey_store(folder, quick)
    plan = make_plan(load_survey(survey_path))
    source = open_store(store)
    chunk = int(source["loss_final"].encoding["chunks"][0])
    dataset = source.load()
    print(
        f"survey store: {dataset.sizes['run']:,} runs, {len(dataset.variables)} arrays, chunks of {chunk:,} runs,"
        f" {dataset.nbytes / MIB:,.0f} MiB in memory, {disk_size(store) / MIB:,.1f} MiB on disk"
        f" (manifest {disk_size(store / MANIFEST_GROUP) / 1024:,.0f} KiB)"
    )
    plain, codecs, checked = folder / "plain.zarr", folder / "codecs.zarr", folder / "checked.zarr"

    print("(a) write the survey store from memory:")
    t_plain = timed(lambda: write_encoded(dataset, plain, chunk, None), repeats)
    t_codecs = timed(lambda: write_encoded(dataset, codecs, chunk, compressors()), repeats)
    t_checked = timed(lambda: write_checked(dataset, checked, chunk), repeats)
    t_hash = timed(lambda: build_manifest(checked, run_chunk=chunk), repeats)
    print(f"    zstd (before)            {t_plain:7.2f} s   {disk_size(plain) / MIB:8.1f} MiB")
    print(
        f"    zstd + crc32c            {t_codecs:7.2f} s   {disk_size(codecs) / MIB:8.1f} MiB"
        f"   CRC cost {100 * (t_codecs / t_plain - 1):+.0f}%"
    )
    print(
        f"    zstd + crc32c + manifest {t_checked:7.2f} s   {disk_size(checked) / MIB:8.1f} MiB"
        f"   total cost {100 * (t_checked / t_plain - 1):+.0f}% (hashing every chunk alone: {t_hash:.2f} s)"
    )

    print("(b) read every array back:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_read_plain = timed(lambda: read_all(xr.open_zarr(plain, consolidated=True)), repeats)
    t_read_checked = timed(lambda: read_all(open_store(checked)), repeats)
    print(f"    plain open_zarr, no checks         {t_read_plain:7.2f} s")
    print(
        f"    open_survey, CRC + SHA-256 checks  {t_read_checked:7.2f} s"
        f"   cost {100 * (t_read_checked / t_read_plain - 1):+.0f}%"
    )

    print("(c) validate the survey store (with the plan):")
    manifest = read_manifest(store)
    assert manifest is not None
    t_quick = timed(lambda: validate(store, plan, quick=True), repeats)
    t_full = timed(lambda: validate(store, plan), repeats)
    t_chunks = timed(lambda: chunk_problems(store, manifest), repeats)
    t_invariants = timed(lambda: invariant_problems(open_store(store)), repeats)
    problems = validate(store, plan)
    print(f"    --quick (metadata, sizes)          {t_quick:7.2f} s")
    print(f"    full                               {t_full:7.2f} s   ({len(problems)} problems)")
    print(f"      of which: hash every chunk       {t_chunks:7.2f} s")
    print(f"                physical invariants    {t_invariants:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 runs instead of 100,000")
    parser.add_argument("--keep", type=Path, help="folder for the survey (kept; a store already there is reused)")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the median of this many runs")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall-clock or CPU seconds")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    print(f"cores visible: {os.cpu_count()}; {args.clock} seconds, median of {args.repeats}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        bench(args.keep, args.quick, args.repeats)
        return
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=base) as tmp:
        bench(Path(tmp), args.quick, args.repeats)


if __name__ == "__main__":
    main()

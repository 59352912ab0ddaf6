"""A damaged store is detected, never read as numbers (issue 17).

Damage is done to a copy of the micro survey store as a failing disk or a bad copy would do it: bytes
inverted in a chunk, a chunk truncated, two chunks of an array swapped, a chunk replaced by one of
another array. ``landscape validate`` must report each case (exit code 1, naming the array and the
chunk) and :func:`analysis.open_survey` must refuse it. Values edited in place and re-hashed pass the
checksums; the physical invariants must still catch them.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from analysis.runs import open_survey  # (tests/analysis shadows the package name; its modules resolve)
from pipeline.store import DamagedStore, UnverifiedStoreWarning
from pipeline.store.manifest import MANIFEST_GROUP, build_manifest, read_manifest, run_chunk, write_manifest
from tests.reliability.helpers import cli

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")

Damage = Callable[[Path, str, str], "tuple[list[str], dict[Path, bytes]] | None"]
"""A damage to chunk ``key`` of array ``name``: the chunks it damaged and their original bytes (None: not possible)."""


def _chunks(path: Path) -> dict[str, dict[str, tuple[int, str]]]:
    """{array: {chunk key inside the array: (size, hash)}} from the store's manifest."""
    manifest = read_manifest(path)
    assert manifest is not None
    return {name: record.chunks for name, record in manifest.arrays.items()}


def flip(path: Path, name: str, key: str) -> tuple[list[str], dict[Path, bytes]]:
    """Invert eight bytes in the middle of the chunk (or all of it, if shorter)."""
    file = path / name / key
    data = bytearray(original := file.read_bytes())
    middle = max(len(data) // 2 - 4, 0)
    data[middle : middle + 8] = bytes(byte ^ 0xFF for byte in data[middle : middle + 8])
    file.write_bytes(bytes(data))
    return [key], {file: original}


def truncate(path: Path, name: str, key: str) -> tuple[list[str], dict[Path, bytes]]:
    """Keep the first half of the chunk (an interrupted copy)."""
    file = path / name / key
    original = file.read_bytes()
    file.write_bytes(original[: len(original) // 2])
    return [key], {file: original}


def swap(path: Path, name: str, key: str) -> tuple[list[str], dict[Path, bytes]] | None:
    """Swap the chunk with another chunk of the same array that holds other bytes (None: there is none)."""
    file = path / name / key
    original = file.read_bytes()
    for other in sorted(_chunks(path)[name]):
        partner = path / name / other
        if other != key and partner.read_bytes() != original:
            theirs = partner.read_bytes()
            file.write_bytes(theirs)
            partner.write_bytes(original)
            return [key, other], {file: original, partner: theirs}
    return None


def replace(path: Path, name: str, key: str) -> tuple[list[str], dict[Path, bytes]]:
    """Overwrite the chunk with a chunk of another array."""
    file = path / name / key
    original = file.read_bytes()
    for other, chunks in sorted(_chunks(path).items()):
        for other_key in sorted(chunks):
            stranger = (path / other / other_key).read_bytes()
            if other != name and stranger != original:
                file.write_bytes(stranger)
                return [key], {file: original}
    raise AssertionError("no other chunk to copy")


DAMAGES: dict[str, Damage] = {"flip": flip, "truncate": truncate, "swap": swap, "replace": replace}


def _restore(saved: dict[Path, bytes]) -> None:
    for file, data in saved.items():
        file.write_bytes(data)


def _check_caught(path: Path, name: str, keys: list[str], capsys) -> list[str]:
    """What is wrong with how validate and open_survey met damage to the chunks ``keys`` of ``name``
    ([] if right): validate names each, open_survey refuses naming one (the first it reads)."""
    failures = []
    chunks = [f"chunk '{name}/{key}'" for key in keys]
    check = cli(capsys, "validate", path)
    for chunk in chunks:
        named = [line for line in check.stdout.splitlines() if f"array {name!r}, {chunk}" in line]
        if check.returncode != 1 or not named:
            failures.append(f"validate: exit {check.returncode}, no line naming {chunk}: {check.stdout[-500:]}")
        elif not all("recompute" in line and "landscape collect" in line for line in named):
            failures.append(f"validate does not say how to recompute {chunk}: {named}")
    try:
        values = open_survey(path)[name].values
    except DamagedStore as error:
        text = str(error)
        if not any(chunk in text for chunk in chunks) or str(path) not in text or "landscape collect" not in text:
            failures.append(f"open_survey refused {chunks} without naming one, the store and a command: {error}")
    else:
        failures.append(f"open_survey read {chunks} as numbers: {values.ravel()[:4]}")
    return failures


def _sweep(path: Path, names: list[str], capsys) -> tuple[list[str], dict[str, int]]:
    """Every damage to the first chunk of each array; returns the failures and the cases run per damage."""
    failures, cases = [], dict.fromkeys(DAMAGES, 0)
    for name in names:
        key = sorted(_chunks(path)[name])[0]
        for kind, damage in DAMAGES.items():
            done = damage(path, name, key)
            if done is None:
                continue
            cases[kind] += 1
            failures += [f"{kind} {name}: {failure}" for failure in _check_caught(path, name, done[0], capsys)]
            _restore(done[1])
    return failures, cases


@pytest.fixture
def store(copy_store: Callable[[], Path]) -> Path:
    return copy_store()


def test_the_issue_case_a_flipped_block_in_loss_final(store: Path, micro_store: Path, micro_survey: Path, capsys):
    """The report of issue 17: eight bytes inverted in the middle of loss_final/c/0."""
    flip(store, "loss_final", "c/0")
    check = cli(capsys, "validate", store, "--survey", micro_survey)
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == (
        f"{store}: array 'loss_final', chunk 'loss_final/c/0' (runs 0-7): its content differs from the manifest;"
        f" recompute it from shard 0 ({store.parent / 'shards' / 'shard-0000.zarr'}): re-run `landscape collect`"
        " (or the workflow: `snakemake --profile profiles/default --config survey=micro`); if `landscape validate`"
        " finds that shard damaged too, delete it first so that the workflow recomputes it"
    ), check.stdout
    dataset = open_survey(store)
    with pytest.raises(DamagedStore, match=re.escape("chunk 'loss_final/c/0' (runs 0-7)")):
        dataset["loss_final"].values  # noqa: B018
    intact = xr.open_zarr(micro_store)["loss_final"].isel(run=slice(8, 16)).values
    np.testing.assert_array_equal(dataset["loss_final"].isel(run=slice(8, 16)).values, intact)  # other chunks read


def test_query_refuses_a_damaged_chunk_in_one_line(store: Path, capsys) -> None:
    flip(store, "outcome", "c/1")
    query = cli(capsys, "query", store, "--by", "width")
    assert (query.returncode, query.stdout) == (2, "")
    (line,) = query.stderr.strip().splitlines()
    assert line.startswith(f"error: {store}: array 'outcome', chunk 'outcome/c/1' (runs 8-15): its content differs")


@pytest.mark.parametrize("name", ["loss_final", "end_w", "run", "activation", "input_distribution", "plateau_escape"])
def test_each_damage_is_caught(store: Path, name: str, capsys) -> None:
    """Flip, truncate, swap, replace: a per-run variable, a parameter array, the index coordinate, a
    string coordinate, the string coordinate the loss descriptions are read from, and a boolean flag array."""
    failures, cases = _sweep(store, [name], capsys)
    assert failures == []
    assert cases["flip"] == cases["truncate"] == cases["replace"] == 1


@pytest.mark.slow
def test_every_damage_to_every_array_is_caught(store: Path, capsys) -> None:
    """The full sweep: every array of the store (data variables and coordinates), every damage."""
    names = sorted(_chunks(store))
    failures, cases = _sweep(store, names, capsys)
    assert failures == [], "\n".join(failures)
    assert cases["flip"] == cases["truncate"] == cases["replace"] == len(names) > 90
    assert cases["swap"] > 40  # arrays whose two chunks hold different bytes (identical chunks swap to no change)


def test_damaged_metadata_is_caught_at_open(store: Path, capsys) -> None:
    """An array's zarr.json edited (a wrong data type would decode the chunks as other numbers)."""
    metadata = store / "loss_final" / "zarr.json"
    metadata.write_text(metadata.read_text().replace('"float64"', '"float32"'))
    zarr.consolidate_metadata(str(store))
    check = cli(capsys, "validate", store)
    assert check.returncode == 1
    assert any("array 'loss_final': its zarr.json (shape, chunks" in line for line in check.stdout.splitlines())
    with pytest.raises(DamagedStore, match="array 'loss_final': its zarr.json"):
        open_survey(store)


def test_a_damaged_manifest_is_reported(store: Path, capsys) -> None:
    manifest = store / MANIFEST_GROUP / "zarr.json"
    manifest.write_text(manifest.read_text()[:-20])
    check = cli(capsys, "validate", store)
    assert check.returncode == 1
    assert "the manifest" in check.stdout and "cannot be read" in check.stdout
    with pytest.raises(DamagedStore, match="the manifest"):
        open_survey(store)


def test_quick_reads_metadata_only(store: Path, capsys) -> None:
    """--quick sees a truncated chunk (its size) but reads no chunk, so it misses a same-size flip."""
    flip(store, "loss_final", "c/0")
    assert cli(capsys, "validate", store, "--quick").returncode == 0
    assert cli(capsys, "validate", store).returncode == 1
    truncate(store, "end_w", "c/1/0/0")
    check = cli(capsys, "validate", store, "--quick")
    assert check.returncode == 1
    assert "array 'end_w', chunk 'end_w/c/1/0/0' (runs 8-15):" in check.stdout
    assert "bytes on disk" in check.stdout


def test_collect_refuses_a_damaged_shard(micro_store: Path, micro_survey: Path, scratch: Path, capsys) -> None:
    """A damaged shard is named with the command that recomputes it; no survey store is written."""
    shards = scratch / "results" / "micro" / "shards"
    shutil.copytree(micro_store.parent / "shards", shards)
    flip(shards / "shard-0001.zarr", "end_loss", "c/0")
    out = scratch / "results" / "micro" / "survey.zarr"
    result = cli(capsys, "collect", micro_survey, *sorted(shards.glob("shard-*.zarr")), "--out", out)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {shards / 'shard-0001.zarr'}: array 'end_loss', chunk 'end_loss/c/0' (runs 8-15)")
    assert f"--shard 1 --out {shards / 'shard-0001.zarr'}" in line and "landscape simulate" in line
    assert not out.exists()


def test_validate_checks_the_plan_against_the_manifest(store: Path, micro_survey: Path, scratch: Path, capsys):
    """The same runs, planned into other shards: no run is missing, but the plan is not the store's."""
    other = scratch / "other.yaml"
    other.write_text(micro_survey.read_text().replace("shard_size: 8", "shard_size: 4"))
    assert "shard_size: 4" in other.read_text()
    check = cli(capsys, "validate", store, "--survey", other)
    assert check.returncode == 1
    assert f"{store}: the store was collected from another plan than the survey's (its hash differs)" in (
        check.stdout.splitlines()
    )


# --- values edited in place: the checksums pass, the invariants do not ---------------------------------

EDITS: list[tuple[str, tuple[int, ...], float, str]] = [
    ("loss_final", (3,), -1.0, "variable 'loss_final' is negative or infinite for a run that did not diverge: run 3"),
    (
        "grad_norm_final",
        (11,),
        np.inf,
        "variable 'grad_norm_final' is negative or infinite for a run that did not diverge: run 11",
    ),
    ("outcome", (5,), 42, "variable 'outcome' holds a code outside its flag_values: run 5"),
    ("end_mechanisms", (12,), 64, "variable 'end_mechanisms' holds a code outside its flag_masks: run 12"),
    ("n_escape_neurons", (7,), 9, "variable 'n_escape_neurons' differs from the number of end_escape flags: run 7"),
    ("plateau_n_grew", (8, 0), 5, "variable 'plateau_n_grew' differs from the number of plateau_grew flags: run 8"),
    ("n_plateaus", (4,), 3, "variable 'n_plateaus' differs from the number of filled plateau slots: run 4"),
    ("plateau_end", (2, 0), 1, "variable 'plateau_start' is not before plateau_end: run 2"),
    ("steps_taken", (9,), 301, "variable 'steps_taken' lies outside 0..max_steps (the step budget): run 9"),
]


def _edit_in_place(path: Path, name: str, index: tuple[int, ...], value: float) -> None:
    """Write one value with zarr itself: the chunk gets a valid CRC, but no longer matches the manifest."""
    array = zarr.open_array(str(path / name), mode="r+")
    array[index] = value


def _rehash_in_place(path: Path) -> None:
    """Rebuild the manifest from the chunks as they are now (what a careless tool would do)."""
    old = read_manifest(path)
    assert old is not None
    manifest = build_manifest(path, survey=old.survey, plan=old.plan, run_chunk=run_chunk(path))
    write_manifest(path, manifest)


def test_the_micro_store_meets_every_invariant(micro_store: Path) -> None:
    from pipeline.store.invariants import invariant_problems, rules

    dataset = open_survey(micro_store)
    assert len(rules(dataset)) > 25
    assert invariant_problems(dataset) == []


def test_invariants_catch_values_that_pass_the_checksums(store: Path, micro_survey: Path, capsys) -> None:
    for name, index, value, _ in EDITS:
        _edit_in_place(store, name, index, value)
    before = cli(capsys, "validate", store, "--survey", micro_survey)
    assert before.returncode == 1 and "differs from the manifest" in before.stdout
    _rehash_in_place(store)
    check = cli(capsys, "validate", store, "--survey", micro_survey)
    assert check.returncode == 1
    assert sorted(check.stdout.splitlines()) == sorted(f"{store}: {line}" for *_, line in EDITS)
    for name, index, value, _ in EDITS:  # the checksums pass: the edited values read back
        assert open_survey(store)[name].values[index] == value


def test_rehash_refuses_a_store_whose_chunks_changed(store: Path, capsys) -> None:
    _edit_in_place(store, "loss_final", (3,), 1.0)
    manifest = (store / MANIFEST_GROUP / "zarr.json").read_bytes()
    check = cli(capsys, "validate", store, "--rehash")
    assert check.returncode == 1
    assert "array 'loss_final', chunk 'loss_final/c/0' (runs 0-7): its content differs" in check.stdout
    assert (store / MANIFEST_GROUP / "zarr.json").read_bytes() == manifest


# --- stores written before checksums ----------------------------------------------------------------------


@pytest.fixture
def old_store(micro_store: Path, scratch: Path) -> Iterator[Path]:
    """The micro store as written before this change: zarr's default codecs (no CRC), no manifest."""
    path = scratch / "old" / "survey.zarr"
    dataset = xr.open_zarr(micro_store)
    for variable in dataset.variables.values():
        variable.encoding = {"chunks": variable.encoding["chunks"]} if "chunks" in variable.encoding else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(path, zarr_format=3, consolidated=True, write_empty_chunks=True)
    codecs = [codec["name"] for codec in zarr.open_array(str(path / "loss_final")).metadata.to_dict()["codecs"]]
    assert "crc32c" not in codecs and read_manifest(path) is None
    yield path


def test_an_old_store_opens_with_a_warning(old_store: Path) -> None:
    with pytest.warns(UnverifiedStoreWarning, match=r"cannot be verified; run `landscape validate .* --rehash`"):
        dataset = open_survey(old_store)
    assert dataset.sizes["run"] == 16


def test_rehash_adds_the_manifest_after_a_full_read(old_store: Path, micro_survey: Path, capsys) -> None:
    check = cli(capsys, "validate", old_store, "--survey", micro_survey)
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"{old_store}: no manifest: the store was written before checksums and its chunks cannot be verified;"
        f" run `landscape validate {old_store} --rehash` to read it in full and add one"
    ]
    rehashed = cli(capsys, "validate", old_store, "--rehash", "--survey", micro_survey)
    assert (rehashed.returncode, rehashed.stdout) == (0, f"{old_store}: valid store; manifest written\n")
    assert cli(capsys, "validate", old_store, "--survey", micro_survey).returncode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedStoreWarning)
        dataset = open_survey(old_store)
    flip(old_store, "loss_final", "c/1")
    with pytest.raises(DamagedStore, match=re.escape("chunk 'loss_final/c/1' (runs 8-15)")):
        dataset["loss_final"].values  # noqa: B018


def test_rehash_refuses_an_old_store_that_breaks_an_invariant(old_store: Path, capsys) -> None:
    _edit_in_place(old_store, "loss_final", (3,), -1.0)
    check = cli(capsys, "validate", old_store, "--rehash")
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"{old_store}: variable 'loss_final' is negative or infinite for a run that did not diverge: run 3"
    ]
    assert read_manifest(old_store) is None


def test_plan_digest_of_a_text_column_with_missing_values():
    """Plans of surveys whose settings are absent for some cases hold NaN in text columns (saddle_to_saddle)."""
    import pandas as pd

    from pipeline.store.manifest import plan_digest

    plan = pd.DataFrame({"activation": pd.Series(["relu", np.nan], dtype=object), "width": [2, 4]})
    other = pd.DataFrame({"activation": pd.Series(["relu", "leaky_relu"], dtype=object), "width": [2, 4]})
    assert plan_digest(plan) == plan_digest(plan.copy())
    assert plan_digest(plan) != plan_digest(other)

"""import_tiles on well-formed sources: folders, HDF5 pairs, CSV manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from generation.models import Dataset, ImportRun, Tile
from generation.tiles import hdf5
from generation.tiles.importer import import_tiles
from generation.tiles.store import read_tile
from tests.generation.conftest import write_hdf5_pair, write_manifest

pytestmark = pytest.mark.django_db


def stored(dataset: str) -> dict[str, tuple[int, str]]:
    return {t.sha256: (t.label, t.split) for t in Tile.objects.filter(dataset__name=dataset)}


def test_folder_import_stores_each_unique_tile_once_with_label_and_split(tile_folder):
    summary = import_tiles(tile_folder.root, "sample", progress=False)

    assert summary.files_read == tile_folder.files == 18
    assert summary.tiles_stored == len(tile_folder.unique) == 16
    assert summary.duplicates == tile_folder.duplicates == 2
    assert stored("sample") == tile_folder.unique
    assert summary.counts == {
        "train": {"healthy": 6, "tumour": 6},
        "valid": {"healthy": 2, "tumour": 2},
    }
    assert ImportRun.objects.get().summary["tiles_stored"] == 16


def test_stored_png_decodes_to_the_source_pixels_and_is_named_by_their_hash(tile_folder, settings):
    import_tiles(tile_folder.root, "sample", progress=False)
    tile = Tile.objects.get(source="train/0/patch0000000.jpg")
    pixels = read_tile(tile.path)
    assert np.array_equal(pixels, tile_folder.decoded(tile_folder.root / tile.source))
    assert (
        tile.path
        == Path(settings.MEDIA_ROOT)
        / "tiles"
        / tile.sha256[:2]
        / tile.sha256[2:4]
        / f"{tile.sha256}.png"
    )
    assert (tile.width, tile.height, tile.kind) == (96, 96, "real")


def test_duplicates_are_recorded_on_the_kept_tile(tile_folder):
    import_tiles(tile_folder.root, "sample", progress=False)
    kept = Tile.objects.get(source="train/1/copy_patch0000006.jpg")  # sorts before patch...
    assert kept.provenance["duplicate_sources"] == ["train/1/patch0000006.jpg"]


def test_second_run_adds_nothing(tile_folder, isolated_storage):
    import_tiles(tile_folder.root, "sample", progress=False)
    files_before = sorted(isolated_storage.rglob("*"))
    again = import_tiles(tile_folder.root, "sample", progress=False)
    assert again.tiles_stored == 0
    assert again.already_present == 16 and again.duplicates == 2
    assert Tile.objects.count() == 16
    assert sorted(isolated_storage.rglob("*")) == files_before


def test_worker_processes_give_the_same_result_as_one(tile_folder):
    one = import_tiles(tile_folder.root, "one", workers=1, progress=False)
    two = import_tiles(tile_folder.root, "two", workers=2, progress=False)
    assert stored("one") == stored("two")
    assert (one.tiles_stored, one.duplicates) == (two.tiles_stored, two.duplicates)


def test_same_tiles_in_two_datasets_share_one_file(tile_folder, isolated_storage):
    import_tiles(tile_folder.root, "a", progress=False)
    import_tiles(tile_folder.root, "b", progress=False)
    assert Tile.objects.count() == 32
    assert len(list(isolated_storage.rglob("*.png"))) == 16


def test_hdf5_pair_of_the_same_tiles_gives_identical_hashes(tile_folder, hdf5_from_folder):
    import_tiles(tile_folder.root, "from-folder", progress=False)
    h5_dir = hdf5_from_folder(tile_folder)
    summary = import_tiles(h5_dir, "from-hdf5", progress=False)
    assert summary.format == "hdf5"
    assert stored("from-hdf5") == stored("from-folder")
    assert summary.duplicates == 2


def test_gzipped_hdf5_read_in_chunks(tile_folder, hdf5_from_folder, monkeypatch):
    monkeypatch.setattr(hdf5, "HDF5_CHUNK", 5)  # several chunks, one partial
    h5_dir = hdf5_from_folder(tile_folder, gz=True)
    summary = import_tiles(
        h5_dir / "camelyonpatch_level_2_split_train_x.h5.gz", "gz", progress=False
    )
    assert summary.files_read == 13 and summary.tiles_stored == 12
    assert {split for _, split in stored("gz").values()} == {"train"}
    assert Tile.objects.get(source_index=8).source == "camelyonpatch_level_2_split_train_x.h5.gz"


def test_hdf5_split_comes_from_the_name_or_option(tmp_path):
    pixels = np.stack([np.full((96, 96, 3), i, np.uint8) for i in range(4)])
    x_file = write_hdf5_pair(tmp_path, "test", pixels, np.array([0, 1, 0, 1]))
    renamed = x_file.rename(tmp_path / "tiles_x.h5")
    (tmp_path / "camelyonpatch_level_2_split_test_y.h5").rename(tmp_path / "tiles_y.h5")
    import_tiles(renamed, "named", split="holdout", progress=False)
    assert set(stored("named").values()) == {(0, "holdout"), (1, "holdout")}


def test_csv_manifest_with_and_without_split_column(tile_folder, tmp_path):
    rows = [
        ["pcam/train/0/patch0000000.jpg", "0", "train"],
        ["pcam/valid/1/patch0000015.jpg", "tumour", "valid"],
    ]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    summary = import_tiles(manifest, "csv", progress=False)
    assert summary.format == "csv" and summary.tiles_stored == 2
    assert sorted(stored("csv").values()) == [(0, "train"), (1, "valid")]

    no_split = write_manifest(tmp_path / "m2.csv", [r[:2] for r in rows], header=("path", "label"))
    import_tiles(no_split, "csv2", split="extra", progress=False)
    assert {s for _, s in stored("csv2").values()} == {"extra"}


def test_label_folder_layout_without_split_level_takes_split_option(tile_folder):
    import_tiles(tile_folder.root / "valid", "flat", split="valid", progress=False)
    assert len(stored("flat")) == 4


def test_command_prints_summary_and_json(tile_folder, capsys):
    call_command("import_tiles", str(tile_folder.root), "--dataset", "cmd")
    text = capsys.readouterr().out
    assert "tiles stored     16" in text and "duplicates       2" in text
    call_command("import_tiles", str(tile_folder.root), "--dataset", "cmd", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["tiles_stored"] == 0 and data["already_present"] == 16 and data["files_read"] == 18
    assert data["counts"]["valid"] == {"healthy": 2, "tumour": 2}
    assert Dataset.objects.get(name="cmd").imports.count() == 2


def test_a_few_real_pcam_tiles_with_a_known_duplicate(shared_pcam, tmp_path):
    """Real JPEG tiles from ../shared/pcam, including one byte-identical pair."""
    import hashlib
    import shutil

    files = sorted((shared_pcam / "valid" / "1").glob("*.jpg"))
    by_bytes: dict[str, Path] = {}
    pair = None
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in by_bytes:
            pair = (by_bytes[digest], path)
            break
        by_bytes[digest] = path
    assert pair is not None, "the sample's README promises duplicates"
    chosen = [*pair, *files[:8]]
    target = tmp_path / "real" / "valid" / "1"
    target.mkdir(parents=True)
    for path in chosen:
        shutil.copy(path, target / path.name)
    summary = import_tiles(tmp_path / "real", "real", progress=False)
    assert summary.files_read == len(set(chosen))
    assert summary.duplicates >= 1
    assert summary.tiles_stored == summary.files_read - summary.duplicates


@pytest.mark.slow
def test_full_shared_pcam_sample(shared_pcam):
    """Acceptance: 23,000 files -> 22,078 unique tiles, 922 duplicates; a re-run adds none."""
    first = import_tiles(shared_pcam, "pcam-sample", progress=False)
    assert (first.files_read, first.tiles_stored, first.duplicates) == (23000, 22078, 922)
    assert (
        first.counts["train"]["healthy"]
        + first.counts["train"]["tumour"]
        + first.counts["valid"]["healthy"]
        + first.counts["valid"]["tumour"]
        == 22078
    )
    second = import_tiles(shared_pcam, "pcam-sample", progress=False)
    assert second.tiles_stored == 0 and second.already_present == 22078
    assert Tile.objects.count() == 22078

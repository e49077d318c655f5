"""Bad input: a clear error naming the file, and the database and MEDIA_ROOT exactly as before."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from generation.models import Dataset, ImportRun, Tile
from generation.tiles import importer
from generation.tiles.importer import import_tiles
from tests.generation.conftest import TileFolder, he_like_tile, write_hdf5_pair, write_manifest

pytestmark = pytest.mark.django_db


def snapshot(media: Path) -> tuple:
    files = {
        p.relative_to(media).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in media.rglob("*")
    }
    rows = (
        list(Dataset.objects.values_list("name", flat=True)),
        list(Tile.objects.values_list("sha256", "label", "split")),
        ImportRun.objects.count(),
    )
    return files, rows


@pytest.fixture
def previous_import(tile_folder: TileFolder, isolated_storage: Path) -> tuple:
    """A dataset already imported, so 'as before' is not simply 'empty'."""
    import_tiles(tile_folder.root / "valid", "before", split="valid", progress=False)
    return snapshot(isolated_storage)


def folder_with(tile_folder: TileFolder, name: str, write: Callable[[Path], None]) -> Path:
    """The fixture folder plus one bad file, listed after good ones so some are staged first."""
    write(tile_folder.root / "train" / "1" / name)
    return tile_folder.root


def truncated_jpeg(path: Path) -> None:
    Image.fromarray(he_like_tile(99)).save(path, quality=75)
    path.write_bytes(path.read_bytes()[:400])


def not_an_image(path: Path) -> None:
    path.write_bytes(b"this is not a picture\n" * 20)


def wrong_size(path: Path) -> None:
    Image.fromarray(he_like_tile(98, size=64)).save(path)


def grey(path: Path) -> None:
    Image.fromarray(he_like_tile(97)[..., 0], mode="L").save(path)


FOLDER_CASES = {
    "truncated": ("zz_truncated.jpg", truncated_jpeg, "not a readable image"),
    "garbage-with-png-name": ("zz_garbage.png", not_an_image, "not a readable image"),
    "text-file": ("zz_notes.txt", not_an_image, "not an image file"),
    "wrong-size": ("zz_small.png", wrong_size, "image is 64x64 RGB; expected 96x96 RGB"),
    "not-rgb": ("zz_grey.png", grey, "image is 96x96 L; expected 96x96 RGB"),
}


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_bad_file_in_folder_aborts_and_keeps_nothing(
    case, tile_folder, previous_import, isolated_storage
):
    name, write, expected = FOLDER_CASES[case]
    root = folder_with(tile_folder, name, write)
    with pytest.raises(CommandError) as error:
        call_command("import_tiles", str(root), "--dataset", "bad", "--workers", "1")
    assert f"train/1/{name}" in str(error.value) and expected in str(error.value)
    assert "Nothing was imported" in str(error.value)
    assert snapshot(isolated_storage) == previous_import


def test_label_folder_outside_0_1(tile_folder, previous_import, isolated_storage):
    (tile_folder.root / "train" / "2").mkdir()
    Image.fromarray(he_like_tile(50)).save(tile_folder.root / "train" / "2" / "x.png")
    with pytest.raises(CommandError, match=r"train/2/x.png: label folder '2' is not a label"):
        call_command("import_tiles", str(tile_folder.root), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import


def test_same_pixels_with_two_labels_is_refused(tile_folder, previous_import, isolated_storage):
    src = tile_folder.root / "train" / "0" / "patch0000000.jpg"
    (tile_folder.root / "train" / "1" / "zz_relabelled.jpg").write_bytes(src.read_bytes())
    with pytest.raises(
        CommandError, match=r"zz_relabelled.jpg: same pixels as train/0/patch0000000.jpg"
    ):
        call_command("import_tiles", str(tile_folder.root), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import


def h5(tmp_path: Path, n: int = 6, labels: list[int] | None = None, **kwargs) -> Path:
    pixels = np.stack([he_like_tile(i) for i in range(n)])
    return write_hdf5_pair(
        tmp_path / "h5", "valid", pixels, np.array(labels or [0, 1] * (n // 2)), **kwargs
    )


def rewrite(path: Path, key: str, data: np.ndarray) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, data=data)


HDF5_CASES = {
    "length-mismatch": (
        lambda x: rewrite(
            x.with_name(x.name.replace("_x", "_y")), "y", np.zeros((5, 1, 1, 1), np.uint8)
        ),
        r"_x.h5 has 6 tiles but .*_y.h5 has 5 labels",
    ),
    "label-outside": (
        lambda x: rewrite(
            x.with_name(x.name.replace("_x", "_y")),
            "y",
            np.array([0, 1, 0, 2, 1, 0]).reshape(-1, 1, 1, 1),
        ),
        r"_x.h5\[3\]: label 2 \(expected 0 or 1\)",
    ),
    "wrong-shape": (
        lambda x: rewrite(x, "x", np.zeros((6, 64, 64, 3), np.uint8)),
        r"'x' is uint8 \(6, 64, 64, 3\); expected uint8 N x 96 x 96 x 3",
    ),
    "wrong-dtype": (
        lambda x: rewrite(x, "x", np.zeros((6, 96, 96, 3), np.float32)),
        r"'x' is float32 .*expected uint8",
    ),
    "missing-key": (
        lambda x: rewrite(x, "images", np.zeros((6, 96, 96, 3), np.uint8)),
        r"expected a dataset under key 'x'",
    ),
    "not-hdf5": (lambda x: x.write_bytes(b"garbage" * 100), r"_x.h5: not a readable HDF5 file"),
    "missing-y": (
        lambda x: x.with_name(x.name.replace("_x", "_y")).unlink(),
        r"label file .*_y.h5 is missing",
    ),
    "empty": (
        lambda x: (
            rewrite(x, "x", np.zeros((0, 96, 96, 3), np.uint8)),
            rewrite(x.with_name(x.name.replace("_x", "_y")), "y", np.zeros((0, 1, 1, 1), np.uint8)),
        ),
        r"empty source, no tiles found",
    ),
}


@pytest.mark.parametrize("case", HDF5_CASES)
def test_bad_hdf5_aborts_and_keeps_nothing(case, tmp_path, previous_import, isolated_storage):
    break_it, pattern = HDF5_CASES[case]
    x_file = h5(tmp_path)
    break_it(x_file)
    with pytest.raises(CommandError, match=pattern):
        call_command("import_tiles", str(x_file), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import


def test_corrupt_gzip(tmp_path, previous_import, isolated_storage):
    x_file = h5(tmp_path, gz=True)
    x_file.write_bytes(gzip.compress(bytes(range(256)) * 64)[:100])  # cut mid-stream
    with pytest.raises(CommandError, match=r"_x.h5.gz: not a readable gzip file"):
        call_command("import_tiles", str(x_file), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import
    assert not list((tmp_path / "cache").rglob("*.h5")), "no half-decompressed copy is kept"


def test_gzipped_file_that_is_not_hdf5_leaves_no_cached_copy(tmp_path, previous_import):
    x_file = h5(tmp_path, gz=True)
    x_file.write_bytes(gzip.compress(b"not hdf5" * 100))
    with pytest.raises(CommandError, match=r"_x.h5.gz: not a readable HDF5 file"):
        call_command("import_tiles", str(x_file), "--dataset", "bad")
    assert not list((tmp_path / "cache").rglob("*.h5"))


CSV_CASES = {
    "label-outside": (
        ["pcam/train/0/patch0000000.jpg", "7", "train"],
        r"line 3: pcam/train/0/patch0000000.jpg: label '7' is not a label",
    ),
    "missing-file": (
        ["pcam/train/0/nope.jpg", "0", "train"],
        r"line 3: .*no such file 'pcam/train/0/nope.jpg'",
    ),
    "path-traversal": (
        ["../../etc/passwd", "0", "train"],
        r"line 3: .*points outside the manifest's folder",
    ),
    "bad-split": (["pcam/train/0/patch0000001.jpg", "0", "a/b"], r"line 3: .*split 'a/b' must be"),
}


@pytest.mark.parametrize("case", CSV_CASES)
def test_bad_csv_row_aborts_and_keeps_nothing(
    case, tile_folder, tmp_path, previous_import, isolated_storage
):
    row, pattern = CSV_CASES[case]
    manifest = write_manifest(
        tmp_path / "m.csv", [["pcam/train/1/patch0000006.jpg", "1", "train"], row]
    )
    with pytest.raises(CommandError, match=pattern):
        call_command("import_tiles", str(manifest), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: p.mkdir(), r"empty source, no tiles found"),
        (lambda p: write_manifest(p.with_suffix(".csv"), []), r"empty source"),
        (lambda p: None, r"no such file or folder"),
        (
            lambda p: write_manifest(p.with_suffix(".csv"), [], header=("file", "y")),
            r"line 1 must be a header",
        ),
    ],
    ids=["empty-folder", "header-only-csv", "missing-path", "csv-without-header"],
)
def test_empty_or_missing_source(make, pattern, tmp_path, previous_import, isolated_storage):
    target = tmp_path / "src"
    made = make(target)
    with pytest.raises(CommandError, match=pattern):
        call_command("import_tiles", str(made or target), "--dataset", "bad")
    assert snapshot(isolated_storage) == previous_import


def test_skip_invalid_imports_the_rest_and_lists_every_skip(tile_folder, capsys):
    for name, write, _ in FOLDER_CASES.values():
        write(tile_folder.root / "train" / "1" / name)
    summary = import_tiles(tile_folder.root, "lenient", skip_invalid=True, progress=False)
    assert summary.tiles_stored == 16
    skipped = {s["source"]: s["reason"] for s in summary.skipped}
    assert set(skipped) == {f"train/1/{name}" for name, _, _ in FOLDER_CASES.values()}
    assert "expected 96x96 RGB" in skipped["train/1/zz_small.png"]
    assert summary.as_dict()["skipped_count"] == 5


def test_failure_while_moving_files_removes_them_and_rolls_back(
    tile_folder, previous_import, isolated_storage, monkeypatch
):
    real_move = importer._move_into_store

    def move_then_fail(shas, staging, store, moved):
        real_move(shas[:3], staging, store, moved)
        assert len(moved) == 3
        raise OSError("disk full")

    monkeypatch.setattr(importer, "_move_into_store", move_then_fail)
    with pytest.raises(OSError, match="disk full"):
        import_tiles(tile_folder.root, "bad", progress=False)
    assert snapshot(isolated_storage) == previous_import


def test_tile_size_must_match_the_dataset(tile_folder, previous_import):
    with pytest.raises(
        CommandError, match=r"dataset 'before' holds 96px tiles; got --tile-size 64"
    ):
        call_command(
            "import_tiles", str(tile_folder.root), "--dataset", "before", "--tile-size", "64"
        )


@pytest.mark.parametrize("name", ["../../evil", "a/b", "x" * 65, "", "..", "naïve", "a b"])
def test_a_dataset_name_outside_the_safe_alphabet_is_refused(tile_folder, name):
    with pytest.raises(CommandError, match="expected 1 to 64 letters, digits"):
        call_command("import_tiles", str(tile_folder.root), "--dataset", name)
    assert not Dataset.objects.exists() and not Tile.objects.exists()

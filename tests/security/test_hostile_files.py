"""Crafted files given to import_tiles: refused with an error naming the file (or manifest
line) and what was expected, with nothing stored, nothing decoded at the declared size, and
no file read or written outside what the import may touch.

Each case goes through both entry points, the function and `manage.py import_tiles`.
tests/generation/test_import_bad_input.py covers honest mistakes (a truncated JPEG, a wrong
label); this file covers files made to hurt.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image, ImageFile

from generation.models import Dataset, ImportRun, Tile
from generation.tiles.importer import TileImportError, import_tiles
from generation.tiles.sources import SourceError, open_source
from tests.generation.conftest import he_like_tile, write_hdf5_pair, write_manifest

pytestmark = pytest.mark.django_db

TILES = 6


def state(tmp_path: Path) -> tuple:
    """Every file under the test's tmp dir (sources, MEDIA_ROOT, cache) and every import row."""
    files = {}
    for path in sorted(tmp_path.rglob("*")):
        rel = path.relative_to(tmp_path).as_posix()
        if path.is_symlink():
            files[rel] = f"-> {path.readlink()}"
        elif path.is_file():
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = (
        list(Dataset.objects.values_list("name", flat=True)),
        list(Tile.objects.values_list("sha256", flat=True)),
        ImportRun.objects.count(),
    )
    return files, rows


def refused(source: Path) -> str:
    """Import `source` through the function and the command; both must refuse it, with the
    same message. Returns the message."""
    with pytest.raises(TileImportError) as by_function:
        import_tiles(source, "hostile", workers=1, progress=False)
    with pytest.raises(CommandError) as by_command:
        call_command("import_tiles", str(source), "--dataset", "hostile")
    assert str(by_function.value) in str(by_command.value)
    assert "Nothing was imported" in str(by_command.value)
    return str(by_function.value)


@pytest.fixture
def good_folder(tmp_path: Path) -> Path:
    """valid/0 and valid/1 with good tiles: a crafted file is listed among honest ones."""
    root = tmp_path / "import"
    for i in range(TILES):
        folder = root / "valid" / str(i % 2)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(he_like_tile(i)).save(folder / f"tile{i}.png")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A readable tile outside the import folder, which no import may pick up."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    Image.fromarray(he_like_tile(1000)).save(folder / "secret.png")
    return folder / "secret.png"


# --- decompression bombs -----------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4, 9)  # 4 black rows, the rest missing
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.fixture
def decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image Pillow decodes pixels for (imports run in this process)."""
    sizes: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def load(image: ImageFile.ImageFile):
        sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        # past twice Image.MAX_IMAGE_PIXELS: Pillow refuses to open it at all
        (20_000, 20_000, r"image too large to decode \(Image size \(400000000 pixels\) exceeds"),
        # between the limits Pillow only warns, and would allocate 300 MB to decode it
        (10_000, 10_000, r"image is 10000x10000 RGB; expected 96x96 RGB"),
        (1, 2**31 - 1, r"image too large to decode"),
    ],
    ids=["past-the-limit", "between-the-limits", "one-pixel-wide"],
)
def test_a_png_declaring_a_huge_image_is_refused_before_decoding(
    good_folder, tmp_path, decoded_sizes, width, height, expected
):
    bomb = good_folder / "valid" / "1" / "zz_bomb.png"
    bomb.write_bytes(png_declaring(width, height))
    assert bomb.stat().st_size < 2000
    before = state(tmp_path)
    message = refused(good_folder)
    assert message.startswith("valid/1/zz_bomb.png: ")
    assert re.search(expected, message), message
    assert state(tmp_path) == before
    assert decoded_sizes and max(w * h for w, h in decoded_sizes) == 96 * 96


def test_a_bomb_is_listed_and_skipped_with_skip_invalid(good_folder, decoded_sizes):
    (good_folder / "valid" / "0" / "zz_bomb.png").write_bytes(png_declaring(20_000, 20_000))
    summary = import_tiles(good_folder, "lenient", skip_invalid=True, workers=1, progress=False)
    assert summary.tiles_stored == TILES
    assert [s["source"] for s in summary.skipped] == ["valid/0/zz_bomb.png"]
    assert max(w * h for w, h in decoded_sizes) == 96 * 96


# --- HDF5: wrong dtype, a huge declared shape, data kept in other files --------------------------


def pcam_pair(directory: Path) -> Path:
    pixels = np.stack([he_like_tile(i) for i in range(TILES)])
    return write_hdf5_pair(directory, "valid", pixels, np.array([0, 1] * (TILES // 2)))


def y_of(x_file: Path) -> Path:
    return x_file.with_name(x_file.name.replace("_x.h5", "_y.h5"))


def rewrite(path: Path, key: str, **dataset) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, **dataset)


@pytest.mark.parametrize(
    ("key", "dtype", "expected"),
    [
        ("x", np.float64, r"'x' is float64 \(6, 96, 96, 3\); expected uint8 N x 96 x 96 x 3"),
        ("x", np.int16, r"'x' is int16 \(6, 96, 96, 3\); expected uint8 N x 96 x 96 x 3"),
        ("y", np.float64, r"'y' is float64 \(6, 1, 1, 1\); expected integers N x 1 x 1 x 1"),
        ("y", "S1", r"'y' is \|S1 \(6, 1, 1, 1\); expected integers"),
    ],
    ids=["x-float64", "x-int16", "y-float64", "y-bytes"],
)
def test_hdf5_of_the_wrong_dtype_is_refused(tmp_path, key, dtype, expected):
    x_file = pcam_pair(tmp_path / "h5")
    target = x_file if key == "x" else y_of(x_file)
    shape = (TILES, 96, 96, 3) if key == "x" else (TILES, 1, 1, 1)
    rewrite(target, key, data=np.zeros(shape, dtype))
    before = state(tmp_path)
    message = refused(x_file)
    assert message.startswith(str(target)) and re.search(expected, message), message
    assert state(tmp_path) == before


def test_hdf5_declaring_a_billion_tiles_in_a_small_file_is_refused(tmp_path):
    x_file = pcam_pair(tmp_path / "h5")
    billion = 10**9
    with h5py.File(x_file, "w") as handle:
        x = handle.create_dataset("x", (billion, 96, 96, 3), np.uint8, chunks=(8, 96, 96, 3))
        x[:TILES] = np.stack([he_like_tile(i) for i in range(TILES)])  # one chunk written
    with h5py.File(y_of(x_file), "w") as handle:
        y = handle.create_dataset("y", (billion, 1, 1, 1), np.uint8, chunks=(4096, 1, 1, 1))
        y[:TILES, 0, 0, 0] = [0, 1] * (TILES // 2)
    assert x_file.stat().st_size < 1_000_000  # 27 TB declared
    with pytest.raises(SourceError, match="declares shape"):
        open_source(x_file)  # at once, before counting or reading a tile
    before = state(tmp_path)
    message = refused(x_file)
    assert message == (
        f"{x_file}: 'x' declares shape (1000000000, 96, 96, 3) but stores only 1 of its "
        "125000000 chunks; expected every tile written to the file"
    )
    assert state(tmp_path) == before


def test_hdf5_reading_its_pixels_from_another_file_is_refused(tmp_path, outside):
    """External raw storage, an external link and a virtual dataset would each read a file
    outside the import, whatever the importer's user can read."""
    pixels = np.stack([he_like_tile(i) for i in range(TILES)])
    raw = tmp_path / "elsewhere" / "pixels.raw"
    raw.write_bytes(pixels.tobytes())
    other = tmp_path / "elsewhere" / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.create_dataset("x", data=pixels)
    ways = {
        "external storage": lambda h: h.create_dataset(
            "x", pixels.shape, np.uint8, external=[(str(raw), 0, pixels.nbytes)]
        ),
        "external link": lambda h: h.__setitem__("x", h5py.ExternalLink(str(other), "x")),
        "virtual dataset": lambda h: h.create_virtual_dataset("x", virtual_layout(other, pixels)),
    }
    for way, make in ways.items():
        x_file = pcam_pair(tmp_path / way.replace(" ", "-"))
        with h5py.File(x_file, "w") as handle:
            make(handle)
        with h5py.File(x_file, "r") as handle:  # the crafted file does read the pixels
            assert np.array_equal(handle["x"][:], pixels), way
        before = state(tmp_path)
        message = refused(x_file)
        assert message.startswith(f"{x_file}: 'x' "), message
        assert message.endswith("expected it in this file") or message.endswith(
            "expected it stored in this file"
        ), way
        assert state(tmp_path) == before


def virtual_layout(other: Path, pixels: np.ndarray) -> h5py.VirtualLayout:
    layout = h5py.VirtualLayout(shape=pixels.shape, dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(other), "x", shape=pixels.shape)
    return layout


def test_hdf5_with_a_corrupt_chunk_is_refused_when_read(tmp_path):
    x_file = pcam_pair(tmp_path / "h5")
    pixels = np.stack([he_like_tile(i) for i in range(TILES)])
    rewrite(x_file, "x", data=pixels, chunks=(1, 96, 96, 3), compression="gzip")
    with h5py.File(x_file, "r") as handle:
        chunk = handle["x"].id.get_chunk_info(3)  # tile 3's compressed bytes
    with x_file.open("r+b") as handle:
        handle.seek(chunk.byte_offset + chunk.size // 2)
        handle.write(b"\xff" * 64)
    before = state(tmp_path)
    message = refused(x_file)
    assert message.startswith(f"{x_file.name}[0:6]: cannot read ("), message
    assert state(tmp_path) == before


# --- links and paths that lead out of the import folder ------------------------------------------


def test_a_symlinked_tile_outside_the_folder_is_refused(good_folder, tmp_path, outside):
    (good_folder / "valid" / "1" / "zz_link.png").symlink_to(outside)
    before = state(tmp_path)
    message = refused(good_folder)
    assert message == (
        f"valid/1/zz_link.png: a link to {outside}, outside the import folder {good_folder}"
    )
    assert state(tmp_path) == before


def test_a_symlinked_split_folder_outside_is_refused(good_folder, tmp_path, outside):
    (outside.parent / "0").mkdir()
    (outside.parent / "0" / "stolen.png").write_bytes(outside.read_bytes())
    (good_folder / "test").symlink_to(outside.parent)
    before = state(tmp_path)
    message = refused(good_folder)
    assert message.startswith("test/0/stolen.png: a link to "), message
    assert state(tmp_path) == before


def test_a_symlink_that_stays_inside_the_folder_is_imported(good_folder):
    (good_folder / "valid" / "0" / "alias.png").symlink_to(good_folder / "valid/0/tile0.png")
    summary = import_tiles(good_folder, "linked", workers=1, progress=False)
    assert (summary.tiles_stored, summary.duplicates) == (TILES, 1)


CSV_ROWS = {
    "dot-dot": ("../elsewhere/secret.png", r"points outside the manifest's folder"),
    "dot-dot-after-a-folder": ("valid/../../elsewhere/secret.png", r"points outside"),
    "absolute": ("{outside}", r"points outside the manifest's folder"),
    "symlink-out": ("link.png", r"'link.png' points outside the manifest's folder"),
    "etc-passwd": ("../../../../../../../../etc/passwd", r"points outside"),
    "nul-byte": ("valid/0/tile0.png\0.txt", r"cannot be resolved \(embedded null byte\)"),
    "symlink-loop": ("loop-a", r"'loop-a' cannot be resolved \(Symlink loop"),
    "name-too-long": ("a" * 5000, r"no such file 'aaaa"),
}


@pytest.mark.parametrize("case", CSV_ROWS)
def test_manifest_rows_leading_outside_are_refused(good_folder, tmp_path, outside, case):
    raw_path, expected = CSV_ROWS[case]
    (good_folder / "link.png").symlink_to(outside)
    (good_folder / "loop-a").symlink_to(good_folder / "loop-b")
    (good_folder / "loop-b").symlink_to(good_folder / "loop-a")
    manifest = write_manifest(
        good_folder / "m.csv",
        [["valid/1/tile1.png", "1", "valid"], [raw_path.format(outside=outside), "0", "valid"]],
    )
    before = state(tmp_path)
    message = refused(manifest)
    assert message.startswith("m.csv line 3: "), message
    assert re.search(expected, message), message
    assert state(tmp_path) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"path,label,split\nvalid/0/t\xe9.png,0,valid\n", r"m.csv: not UTF-8 text \("),
        (
            b"path,label,split\nvalid/0/tile0.png,0,valid\n" + b"a" * 200_000 + b",0,valid\n",
            r"m.csv line 3: field larger than field limit",
        ),
    ],
    ids=["latin-1", "huge-field"],
)
def test_manifests_that_are_not_utf8_csv_are_refused(good_folder, tmp_path, content, expected):
    manifest = good_folder / "m.csv"
    manifest.write_bytes(content)
    before = state(tmp_path)
    message = refused(manifest)
    assert re.search(expected, message), message
    assert state(tmp_path) == before


def test_a_manifest_saved_with_a_bom_is_read(good_folder):
    rows = [[f"valid/{i % 2}/tile{i}.png", str(i % 2), "valid"] for i in range(TILES)]
    manifest = write_manifest(good_folder / "m.csv", rows)
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    assert import_tiles(manifest, "excel", workers=1, progress=False).tiles_stored == TILES

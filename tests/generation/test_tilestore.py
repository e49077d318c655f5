from pathlib import Path

import numpy as np
from PIL import Image

from generation.tiles.store import encode_png, pixel_sha256, read_tile, tile_relpath, write_atomic
from tests.generation.conftest import he_like_tile


def test_hash_is_of_the_decoded_pixels_not_the_array_layout():
    tile = he_like_tile(1)
    assert pixel_sha256(tile) == pixel_sha256(np.asfortranarray(tile))
    assert pixel_sha256(tile) != pixel_sha256(he_like_tile(2))


def test_relpath_fans_out_by_hash_prefix():
    sha = "ab" * 32
    assert tile_relpath(sha).as_posix() == f"tiles/ab/ab/{sha}.png"


def test_png_round_trip_is_lossless_and_carries_no_metadata(tmp_path: Path):
    tile = he_like_tile(3)
    path = tmp_path / "t.png"
    write_atomic(path, encode_png(tile))
    assert np.array_equal(read_tile(path), tile)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert not image.info.keys() - {"dpi", "gamma"}  # no text chunks, no provenance leaks


def test_atomic_write_leaves_only_the_final_file(tmp_path: Path):
    path = tmp_path / "a" / "b" / "t.png"
    write_atomic(path, b"x" * 10)
    write_atomic(path, b"y" * 10)
    assert path.read_bytes() == b"y" * 10
    assert [p.name for p in path.parent.iterdir()] == ["t.png"]

"""Real and synthetic tiles leave the server identically encoded, with nothing but pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from histostudy.presentation import Presentation, PresentationError, png_chunks
from tests.factories import fixture_pixels


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_same_format_size_mode_and_chunks_for_both_kinds():
    show = Presentation()
    real, synthetic = show.render(fixture_pixels(1, False)), show.render(fixture_pixels(2, True))
    for data in (real, synthetic):
        image = decode(data)
        assert (image.format, image.size, image.mode) == ("PNG", (96, 96), "RGB")
        assert image.info == {}
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]


def test_the_jpeg_round_trip_is_applied_and_matches_pil_q75():
    pixels = fixture_pixels(3, True)
    shown = np.asarray(decode(Presentation(jpeg_quality=75).render(pixels)))
    assert not np.array_equal(shown, pixels)  # a clean PNG would be a giveaway
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75, subsampling="4:2:0")
    assert np.array_equal(shown, np.asarray(decode(buffer.getvalue()).convert("RGB")))


def test_other_sizes_are_resized_to_the_study_size():
    big = np.zeros((128, 128, 3), np.uint8)
    assert decode(Presentation(size=96).render(big)).size == (96, 96)


def test_bad_pixels_are_refused():
    with pytest.raises(PresentationError, match=r"expected \(H, W, 3\) uint8"):
        Presentation().render(np.zeros((96, 96), np.uint8))
    with pytest.raises(PresentationError, match="not a PNG"):
        png_chunks(b"GIF89a")

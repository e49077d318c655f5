"""The one path every tile takes to a reader's screen: the same for real and synthetic.

Real PCam tiles were JPEG q75 4:2:0 before we stored them losslessly; a clean synthetic PNG
beside them would be told apart by its missing block artifacts, not by its morphology. So
both kinds go through the same resize, the same JPEG round-trip and the same PNG encoding
with no ancillary chunks (no text, time, gamma or physical-size metadata). No Django here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


class PresentationError(ValueError):
    """A tile that cannot be presented (wrong shape or dtype)."""


@dataclass(frozen=True)
class Presentation:
    size: int = 96
    jpeg_quality: int = 75  # PCam's own compression
    subsampling: str = "4:2:0"

    @property
    def key(self) -> str:
        """Names the rendering, so cached images of one setting never serve another."""
        return f"s{self.size}-q{self.jpeg_quality}-{self.subsampling.replace(':', '')}"

    def render(self, pixels: np.ndarray) -> bytes:
        """(H, W, 3) uint8 pixels -> PNG bytes of the size x size RGB image a reader sees."""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise PresentationError(
                f"expected (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}"
            )
        image = Image.fromarray(pixels, "RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.LANCZOS)
        jpeg = io.BytesIO()
        image.save(jpeg, "JPEG", quality=self.jpeg_quality, subsampling=self.subsampling)
        jpeg.seek(0)
        with Image.open(jpeg) as decoded:
            # Pixels only: a fresh image carries no info dict, so PNG gets no metadata chunk.
            clean = Image.fromarray(np.asarray(decoded.convert("RGB")), "RGB")
        out = io.BytesIO()
        clean.save(out, "PNG", compress_level=6)
        return out.getvalue()


def png_chunks(data: bytes) -> list[str]:
    """The chunk types of a PNG file in order, to check that nothing but pixels is in it."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise PresentationError("not a PNG file")
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    return chunks

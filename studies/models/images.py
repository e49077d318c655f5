"""How a study's tiles reach readers: every tile, real or synthetic, through the study's one
presentation (size, JPEG round trip, PNG without metadata), rendered once and kept on disk."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from generation.models import Tile
from generation.tiles import read_tile, write_atomic
from histostudy.presentation import Presentation


class StudyImages:
    """Image methods of studies.models.Study, which owns the fields they read."""

    @property
    def presentation(self) -> Presentation:
        return Presentation(size=self.cohort.real_dataset.tile_size, jpeg_quality=self.jpeg_quality)

    def image(self, tile: Tile) -> bytes:
        """The tile as readers see it, rendered once per presentation and kept on disk."""
        presentation = self.presentation
        cached = self.presented_path(tile, presentation)
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
        data = presentation.render(read_tile(tile.path))
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, data)
        return data

    def render_images(self) -> int:
        """Render every case's image before any reader fetches one, so that no fetch takes
        longer for a tile rendered on first request (a new synthetic tile) than for one an
        earlier study left cached (a reused real tile): fetch time must not tell the kinds
        apart. Returns how many were rendered now."""
        rendered = 0
        presentation = self.presentation
        tiles = Tile.objects.filter(cases__study=self).distinct()
        for tile in tiles.iterator(chunk_size=500):
            if not self.presented_path(tile, presentation).exists():
                self.image(tile)
                rendered += 1
        return rendered

    def presented_path(self, tile: Tile, presentation: Presentation | None = None) -> Path:
        """Where the tile's presented image is kept, one folder per presentation setting."""
        key = (presentation or self.presentation).key
        return Path(settings.MEDIA_ROOT) / "presented" / key / tile.relpath

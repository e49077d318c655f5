"""Generation in Django admin: tiles and their annotations (tiles), generators, cohorts and
results (generators). `thumbnail` is what the studies' admin pages use of it."""

from generation.admin import generators, tiles
from generation.admin.tiles import thumbnail

__all__ = ["generators", "thumbnail", "tiles"]

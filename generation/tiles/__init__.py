"""Tiles on disk and in the database: sources (folder, CSV, HDF5), import, the content-addressed
tile store, and the PCam download.

Entry points (importable from this package; each loads its module on first use, because
generation.models itself uses the store):
- import_tiles, TileImportError, ImportSummary (importer): a source into a Dataset, atomically;
- read_tile, write_atomic, encode_png, pixel_sha256, tile_relpath (store): one tile's file;
- open_source, SourceError, FORMATS (sources); download_pcam, DownloadError (download).
"""

from generation import lazy_exports

_EXPORTS = {
    "import_tiles": "importer",
    "remove_unreferenced": "importer",
    "TileImportError": "importer",
    "ImportSummary": "importer",
    "read_tile": "store",
    "write_atomic": "store",
    "encode_png": "store",
    "pixel_sha256": "store",
    "tile_relpath": "store",
    "open_source": "sources",
    "SourceError": "sources",
    "FORMATS": "sources",
    "download_pcam": "download",
    "DownloadError": "download",
    "PCAM_FILES": "download",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

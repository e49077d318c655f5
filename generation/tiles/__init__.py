"""Tiles on disk and in the database: sources (folder, CSV, HDF5), import, the content-addressed
tile store, and the PCam download.

Entry points (importable from this package; each loads its module on first use, because
generation.models itself uses the store):
- import_tiles, TileImportError, ImportSummary (importer): a source into a Dataset, atomically;
- read_tile, write_atomic, encode_png, pixel_sha256, tile_relpath (store): one tile's file;
- open_source, SourceError, FORMATS (sources); download_pcam, DownloadError (download).
"""

from generation import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    importer="ImportSummary TileImportError import_tiles remove_unreferenced",
    store="encode_png pixel_sha256 read_tile tile_relpath write_atomic",
    sources="FORMATS SourceError open_source",
    download="DownloadError PCAM_FILES download_pcam",
)

"""Where the demo finds real PCam tiles: an image folder, else the PCam validation split
downloaded from the official mirror, else an error saying how to get PCam."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from generation.tiles import DownloadError, download_pcam

PCAM_HOME = "https://github.com/basveeling/pcam"


class MissingPcam(Exception):
    """No tiles, and none could be downloaded; the message says how to get PCam."""


def pcam_folder(pcam: Path, download: bool, say: Callable[[str], None]) -> Path:
    """`pcam` if it is a folder, else the downloaded PCam validation split (download=True)."""
    if pcam.is_dir():
        return pcam

    cache = Path(settings.HISTOSTUDY_CACHE_DIR) / "pcam"
    where = (
        f"No PCam tiles at {pcam}. HistoStudy needs real PCam tiles (96x96 H&E, "
        "healthy / tumour). Either:\n"
        f"  - put an image folder there, laid out as {pcam}/<split>/<label>/*.jpg "
        "(split train or valid, label 0 healthy or 1 tumour; the PCam sample has this layout), "
        "or name another folder with `make demo PCAM=/path/to/pcam`; or\n"
        f"  - download the official PCam files camelyonpatch_level_2_split_valid_x.h5.gz and "
        f"camelyonpatch_level_2_split_valid_y.h5.gz ({PCAM_HOME}, Zenodo record 2546921) "
        f"into {cache}/ and run `make demo` again."
    )
    if not download:
        raise MissingPcam(where)
    say(f"   no tiles at {pcam}; downloading the PCam validation split")
    try:
        return download_pcam(
            "valid", Path(settings.HISTOSTUDY_CACHE_DIR), settings.HISTOSTUDY_PCAM_URL
        )
    except DownloadError as exc:
        raise MissingPcam(f"{where}\nThe download failed: {exc}") from exc

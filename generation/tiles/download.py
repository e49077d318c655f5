"""Fetch the official PCam HDF5 files: resumable, checksum-verified, with a progress bar.

Pure module (no Django). The checksums are the SHA-256 of the published `.h5.gz` files as
torchvision's PCAM dataset records them. A file is downloaded to `<name>.part`; an interrupted
download continues from there with an HTTP Range request, and only a file whose checksum
matches is renamed to its final name.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

from tqdm import tqdm

PCAM_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (
        (
            "camelyonpatch_level_2_split_train_x.h5.gz",
            "d619e741468a7ab35c7e4a75e6821b7e7e6c9411705d45708f2a0efc8960656c",
        ),
        (
            "camelyonpatch_level_2_split_train_y.h5.gz",
            "b74126d2c01b20d3661f9b46765d29cf4e4fba6faba29c8e0d09d406331ab75a",
        ),
    ),
    "valid": (
        (
            "camelyonpatch_level_2_split_valid_x.h5.gz",
            "f82ee1670d027b4ec388048d9eabc2186b77c009655dae76d624c0ecb053ccb2",
        ),
        (
            "camelyonpatch_level_2_split_valid_y.h5.gz",
            "ce1ae30f08feb468447971cfd0472e7becd0ad96d877c64120c72571439ae48c",
        ),
    ),
    "test": (
        (
            "camelyonpatch_level_2_split_test_x.h5.gz",
            "79174c2201ad521602a5888be8f36ee10875f37403dd3f2086caf2182ef87245",
        ),
        (
            "camelyonpatch_level_2_split_test_y.h5.gz",
            "0a522005fccc8bbd04c5a117bfaf81d8da2676f03a29d7499f71d0a0bd6068ef",
        ),
    ),
}
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed; the message names the URL or file and what went wrong."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download_pcam(split: str, cache_dir: Path, base_url: str, progress: bool = True) -> Path:
    """Download (or reuse) the x/y pair of a PCam split; returns the path of the x file."""
    if split not in PCAM_FILES:
        raise DownloadError(
            f"unknown PCam split {split!r}; expected one of {', '.join(PCAM_FILES)}"
        )
    target_dir = cache_dir / "pcam"
    target_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        fetch(urljoin(base_url, name), target_dir / name, sha, progress)
        for name, sha in PCAM_FILES[split]
    ]
    return paths[0]


def fetch(url: str, target: Path, sha256: str, progress: bool = True) -> Path:
    """Download `url` to `target`, resuming a partial download, and verify its SHA-256."""
    if target.exists():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # a bad complete file: fetch it again
    part = target.with_name(target.name + ".part")
    _download_to(url, part, progress)
    actual = sha256_of(part)
    if actual != sha256:
        part.unlink()
        raise DownloadError(
            f"{url}: checksum mismatch (SHA-256 {actual}, expected {sha256}); the partial file "
            "was removed, run again"
        )
    part.replace(target)
    return target


def _download_to(url: str, part: Path, progress: bool) -> None:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part file is already whole
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"{url}: cannot connect ({exc}); check the network or the mirror"
        ) from exc
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        mode = "ab" if offset else "wb"
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                disable=not progress,
            ) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            except OSError as exc:
                raise DownloadError(
                    f"{url}: connection lost after {out.tell()} bytes ({exc}); run again to resume"
                ) from exc

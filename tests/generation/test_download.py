"""`import_tiles --download`: against a PCam mirror on loopback (this machine has no internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.models import Tile
from generation.tiles import download
from tests.generation.conftest import he_like_tile, write_hdf5_pair

pytestmark = pytest.mark.django_db


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, honouring `Range: bytes=N-` as a resumable mirror does."""

    requests: list[str | None] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path.split("?")[0]))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        type(self).requests.append(header)
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch, settings) -> Iterator[Path]:
    """A loopback HTTP mirror holding a small 'valid' split, with the checksum table to match."""
    served = tmp_path / "mirror"
    pixels = np.stack([he_like_tile(i) for i in range(6)])
    write_hdf5_pair(served, "valid", pixels, np.array([0, 1, 0, 1, 0, 1]), gz=True)
    files = tuple(
        (name, hashlib.sha256((served / name).read_bytes()).hexdigest())
        for name in (
            "camelyonpatch_level_2_split_valid_x.h5.gz",
            "camelyonpatch_level_2_split_valid_y.h5.gz",
        )
    )
    monkeypatch.setitem(download.PCAM_FILES, "valid", files)
    RangeHandler.requests = []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: RangeHandler(*a, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.HISTOSTUDY_PCAM_URL = f"http://127.0.0.1:{server.server_address[1]}/files/"
    (served / "files").mkdir()
    for name, _ in files:
        (served / name).rename(served / "files" / name)
    yield served / "files"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_imports(mirror, settings):
    call_command("import_tiles", "--download", "valid", "--dataset", "pcam-valid")
    assert Tile.objects.filter(split="valid").count() == 6
    cached = Path(settings.HISTOSTUDY_CACHE_DIR) / "pcam"
    assert sorted(p.name for p in cached.iterdir()) == [
        "camelyonpatch_level_2_split_valid_x.h5.gz",
        "camelyonpatch_level_2_split_valid_y.h5.gz",
    ]
    RangeHandler.requests.clear()
    call_command("import_tiles", "--download", "valid", "--dataset", "pcam-valid")
    assert RangeHandler.requests == [], "verified files in the cache are not fetched again"


def test_interrupted_download_resumes_with_a_range_request(mirror, settings):
    name = "camelyonpatch_level_2_split_valid_x.h5.gz"
    whole = (mirror / name).read_bytes()
    part = Path(settings.HISTOSTUDY_CACHE_DIR) / "pcam" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(whole[:1000])
    call_command("import_tiles", "--download", "valid", "--dataset", "pcam-valid")
    assert "bytes=1000-" in RangeHandler.requests
    assert (part.parent / name).read_bytes() == whole
    assert not part.exists()


def test_checksum_mismatch_is_an_error_and_keeps_no_file(mirror, settings, monkeypatch):
    name, _ = download.PCAM_FILES["valid"][0]
    monkeypatch.setitem(
        download.PCAM_FILES, "valid", ((name, "0" * 64), download.PCAM_FILES["valid"][1])
    )
    with pytest.raises(CommandError, match=rf"{name}: checksum mismatch"):
        call_command("import_tiles", "--download", "valid", "--dataset", "pcam-valid")
    assert not list((Path(settings.HISTOSTUDY_CACHE_DIR) / "pcam").glob("*_x.h5.gz*"))
    assert Tile.objects.count() == 0


def test_unreachable_mirror_names_the_url(settings):
    settings.HISTOSTUDY_PCAM_URL = "http://127.0.0.1:9/nothing/"
    with pytest.raises(
        CommandError, match=r"http://127.0.0.1:9/nothing/camelyonpatch.*cannot connect"
    ):
        call_command("import_tiles", "--download", "valid", "--dataset", "x")


def test_source_and_download_are_exclusive(tmp_path):
    with pytest.raises(CommandError, match="either SOURCE or --download"):
        call_command("import_tiles", str(tmp_path), "--download", "valid", "--dataset", "x")

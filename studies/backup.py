"""Backups that round-trip a finished study: the database as Django fixtures plus MEDIA_ROOT.

`backup DIR` writes, into a new folder:
- db.xml.gz: every row of HistoStudy's tables (and users, groups, API tokens), from
  `dumpdata`, so a backup taken on SQLite restores into PostgreSQL and back. XML, because
  Django's JSON serializer cuts timestamps to milliseconds and reading times need microseconds;
- media.tar: MEDIA_ROOT (tiles, presented images, generators, reports);
- manifest.json: what was written, with row counts and SHA-256 checksums.
The folder is written under a temporary name and renamed when complete, so a killed backup
never looks finished. `restore DIR` checks the checksums, refuses a database that already
holds data, loads the rows in one transaction and unpacks the media, refusing any member
that would land outside MEDIA_ROOT.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core import management
from django.db import transaction
from django.utils import timezone

# Rows Django recreates itself (content types, permissions) or that are not worth keeping
# (sessions, login attempts) are left out; everything else is data.
EXCLUDED = ["contenttypes", "auth.permission", "admin.logentry", "sessions", "axes"]
FORMAT = 1


class BackupError(ValueError):
    """The backup or restore cannot go ahead; the message says why."""


@dataclass
class BackupSummary:
    path: Path
    rows: int
    media_files: int
    seconds: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_models() -> list:
    """Models whose rows a backup carries (the same list decides 'empty' on restore)."""
    out = []
    for model in apps.get_models():
        label = model._meta.label_lower
        if model._meta.app_label in EXCLUDED or label in EXCLUDED:
            continue
        out.append(model)
    return out


def backup(target: Path) -> BackupSummary:

    started = time.perf_counter()
    target = Path(target)
    if target.exists():
        raise BackupError(f"{target} exists; pick a new folder for each backup")
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        buffer = io.StringIO()
        with transaction.atomic():  # one consistent snapshot of every table
            management.call_command("dumpdata", exclude=EXCLUDED, format="xml", stdout=buffer)
            counts = {m._meta.label: m.objects.count() for m in data_models()}
        with gzip.open(tmp / "db.xml.gz", "wt", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
        media = Path(settings.MEDIA_ROOT)
        files = 0
        with tarfile.open(tmp / "media.tar", "w") as tar:
            if media.is_dir():
                for path in sorted(media.rglob("*")):
                    if path.is_file() and not path.is_symlink() and ".staging" not in path.parts:
                        tar.add(path, arcname=path.relative_to(media).as_posix())
                        files += 1
        manifest = {
            "format": FORMAT,
            "created_at": timezone.now().isoformat(),
            "rows": counts,
            "media_files": files,
            "sha256": {name: _sha256(tmp / name) for name in ("db.xml.gz", "media.tar")},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BackupSummary(target, sum(counts.values()), files, time.perf_counter() - started)


def restore(source: Path) -> BackupSummary:

    started = time.perf_counter()
    source = Path(source)
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise BackupError(f"{source}: no manifest.json; not a finished HistoStudy backup")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BackupError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{manifest_path}: format {manifest.get('format')}, expected {FORMAT}")
    for name, digest in expected.items():
        path = source / name
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{path}: missing or its SHA-256 does not match the manifest")
    occupied = [m._meta.label for m in data_models() if m.objects.exists()]
    if occupied:
        raise BackupError(
            "the database already holds data (" + ", ".join(occupied[:5]) + "); restore "
            "into a freshly migrated, empty database"
        )
    media = Path(settings.MEDIA_ROOT).resolve()
    with tarfile.open(source / "media.tar") as tar:
        members = tar.getmembers()
        for member in members:
            where = (media / member.name).resolve()
            if not member.isfile() or not where.is_relative_to(media):
                raise BackupError(
                    f"{source / 'media.tar'}: member {member.name!r} is not a plain file "
                    "inside MEDIA_ROOT; refusing the whole archive"
                )
    fixture = source / "db.xml.gz"
    with transaction.atomic():
        management.call_command("loaddata", str(fixture), verbosity=0)
        media.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source / "media.tar") as tar:
            tar.extractall(media, filter="data")
    rows = sum(int(v) for v in manifest.get("rows", {}).values())
    return BackupSummary(source, rows, len(members), time.perf_counter() - started)

"""Shared fixtures: every test gets its own MEDIA_ROOT and cache, and tiles made on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_PCAM = Path(__file__).resolve().parents[2] / "shared" / "pcam"


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path) -> Path:
    """A fresh MEDIA_ROOT and cache per test, so tests never see each other's files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HISTOSTUDY_CACHE_DIR = tmp_path / "cache"
    settings.HISTOSTUDY_GENERATORS_DIR = tmp_path / "generators"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Users are made in many tests; PBKDF2 at full strength would dominate their time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_pcam() -> Path:
    if not (SHARED_PCAM / "train").is_dir():
        pytest.skip("../shared/pcam is not available here")
    return SHARED_PCAM

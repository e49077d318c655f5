"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from histostudy.settings import env_bool

ROOT = Path(__file__).resolve().parents[1]


def settings_in(env: dict[str, str], expr: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with `env` and print `expr`."""
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG", "SECRET_KEY"}
    }
    code = f"import histostudy.settings as s; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("yes", True), ("False", False), ("off", False)]
)
def test_env_bool_accepts_clear_values(monkeypatch, raw, value):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", "false") is value


def test_env_bool_rejects_anything_else(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG must be true or false"):
        env_bool("SOME_FLAG", "false")


def test_secret_key_required_when_debug_is_off():
    result = settings_in({"DEBUG": "false"}, "s.DEBUG")
    assert result.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in result.stderr
    ok = settings_in(
        {"DEBUG": "false", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "a.org, b.org"},
        "s.ALLOWED_HOSTS",
    )
    assert ok.stdout.strip() == "['a.org', 'b.org']"


def test_sqlite_is_the_default_and_database_url_selects_postgresql():
    default = settings_in({}, "s.DATABASES['default']['ENGINE']")
    assert default.stdout.strip() == "django.db.backends.sqlite3"
    pg = settings_in(
        {"DATABASE_URL": "postgres://u:p@db.example:5433/hs"},
        "*(s.DATABASES['default'][k] for k in ('ENGINE', 'NAME', 'PORT'))",
    )
    assert pg.stdout.split() == ["django.db.backends.postgresql", "hs", "5433"]


def test_media_root_from_environment(tmp_path):
    result = settings_in({"MEDIA_ROOT": str(tmp_path / "tiles")}, "s.MEDIA_ROOT")
    assert result.stdout.strip() == str(tmp_path / "tiles")

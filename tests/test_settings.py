"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from histostudy.settings import env_bool, env_number

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


def test_env_number_reads_numbers_and_names_the_variable_otherwise(monkeypatch):
    monkeypatch.setenv("SOME_COUNT", " 12 ")
    assert env_number("SOME_COUNT", "5") == 12
    monkeypatch.setenv("SOME_COUNT", "1.5")
    assert env_number("SOME_COUNT", "5", kind=float) == 1.5
    with pytest.raises(ImproperlyConfigured, match=r"SOME_COUNT must be an integer, got '1\.5'"):
        env_number("SOME_COUNT", "5")
    monkeypatch.setenv("SOME_COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="SOME_COUNT must be at least 1, got '0'"):
        env_number("SOME_COUNT", "5", minimum=1)
    # at start-up: a deployment's typo stops the process with the variable's name
    result = settings_in({"AXES_FAILURE_LIMIT": "five"}, "s.AXES_FAILURE_LIMIT")
    assert result.returncode != 0
    assert "AXES_FAILURE_LIMIT must be an integer, got 'five'" in result.stderr


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


def test_a_generators_folder_that_cannot_be_written_is_a_system_check_error(settings, tmp_path):
    from generation.checks import generators_folder_check

    settings.HISTOSTUDY_GENERATORS_DIR = tmp_path / "not-yet" / "generators"
    assert generators_folder_check() == []  # created on first use, under a writable parent
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.HISTOSTUDY_GENERATORS_DIR = blocker / "generators"
    errors = generators_folder_check()
    assert [e.id for e in errors] == ["histostudy.E001"]
    assert str(blocker) in errors[0].msg and "not a writable folder" in errors[0].msg


def test_cuda_asked_for_where_torch_sees_no_gpu_is_a_system_check_warning(settings, monkeypatch):
    import torch

    from generation.checks import device_check

    settings.HISTOSTUDY_DEVICE = "auto"
    assert device_check() == []
    settings.HISTOSTUDY_DEVICE = "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    errors = device_check()
    assert [e.id for e in errors] == ["histostudy.W002"]
    assert "HISTOSTUDY_DEVICE=cuda" in errors[0].msg and "CPU-only build" in errors[0].msg
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    (error,) = device_check()
    assert "CUDA 12.4" in error.msg and "finds no GPU" in error.msg
    assert "CUDA_VISIBLE_DEVICES is ''" in error.msg
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_check() == []


def test_the_device_setting_is_checked_and_is_every_network_commands_default(settings):
    from django.core.management import load_command_class

    result = settings_in({"HISTOSTUDY_DEVICE": "gpu"}, "s.HISTOSTUDY_DEVICE")
    assert result.returncode != 0
    assert "HISTOSTUDY_DEVICE must be one of auto, cpu, cuda, got 'gpu'" in result.stderr
    assert settings_in({"HISTOSTUDY_DEVICE": "CPU"}, "s.HISTOSTUDY_DEVICE").stdout.strip() == "cpu"
    assert settings_in({"HISTOSTUDY_DEVICE": " "}, "s.HISTOSTUDY_DEVICE").stdout.strip() == "auto"
    settings.HISTOSTUDY_DEVICE = "cpu"
    for name in ("annotate_tiles", "generate_cohort", "compute_fid", "evaluate_generator",
                 "evaluate_utility"):  # fmt: skip
        parser = load_command_class("generation", name).create_parser("manage.py", name)
        assert parser.get_default("device") == "cpu", name

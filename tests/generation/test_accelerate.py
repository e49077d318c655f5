"""`accelerate launch` with two processes on this CPU (gloo): one generator trained together and
registered once; one cohort generated in shards, with exactly the tiles one process makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from generation.cohorts import Runtime
from generation.models import Cohort, Generator
from generation.tiles.store import read_tile, tile_relpath
from tests.faults.harness import command_env
from tests.generation.conftest import fixture_cohort

# four processes that each load torch, diffusers and Django (about 50 s on a 2-core machine):
# CI runs it with the slow tests
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
LAUNCH = [
    str(Path(sys.executable).with_name("accelerate")),
    "launch",
    "--multi_gpu",  # torchrun's launcher; without a GPU the processes join over gloo
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    str(ROOT / "manage.py"),
]


def launch(*argv: str) -> subprocess.CompletedProcess:
    env = command_env(Path(settings.MEDIA_ROOT), Path(settings.HISTOSTUDY_GENERATORS_DIR))
    run = subprocess.run(
        [*LAUNCH, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"{' '.join(argv)}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def test_two_processes_train_one_generator_and_generate_one_cohort(annotated):
    # a time cap: both processes probe their speeds and agree on the autoencoder's deadline,
    # and past 13 denoiser steps on one step plan (generation/ldm/budget.py)
    trained = launch(
        "train_generator", "--dataset", annotated, "--scheme", "morphology", "--preset", "tiny",
        "--name", "pair", "--max-steps", "16", "--max-minutes", "10",
    )  # fmt: skip
    assert "the autoencoder gets at most" in trained.stdout + trained.stderr  # the probe ran
    generator = Generator.objects.get(name="pair")  # registered once, by the main process
    folder = Path(generator.path)
    assert generator.unet_steps == 16 and (folder / "unet").is_dir()
    assert not (folder.parent / ".pipeline.tmp").exists()

    run = launch(
        "generate_cohort", "--generator", "pair", "--real-dataset", annotated, "--split",
        "valid", "--size", "10", "--name", "sharded", "--steps", "2", "--batch-size", "3",
        "--device", "cpu",
    )  # fmt: skip
    assert "cpu x 2 processes" in run.stdout
    sharded = Cohort.objects.get(name="sharded")
    synthetic = sharded.members.filter(kind="synthetic")
    assert sharded.completed_at is not None
    assert sorted(synthetic.values_list("position", flat=True)) == list(range(10))
    assert not any((Path(settings.MEDIA_ROOT) / ".staging").glob("cohort-*"))

    # one process, same plan and seeds: the same tiles, up to float rounding (other batches and
    # thread counts sum in another order: at most one grey level, in a few pixels)
    fixture_cohort(
        "alone",
        10,
        generator="pair",
        dataset=annotated,
        runtime=Runtime(batch_size=4, device="cpu"),
    )
    alone = Cohort.objects.get(name="alone").members.filter(kind="synthetic")
    two, one = (dict(c.values_list("position", "tile__sha256")) for c in (synthetic, alone))
    store = Path(settings.MEDIA_ROOT)
    for position in range(10):
        a, b = (read_tile(store / tile_relpath(c[position])).astype(int) for c in (two, one))
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3, position

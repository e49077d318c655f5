"""train_generator and generate_cohort killed with SIGKILL anywhere, then run again.

Training promises (generation/ldm/train.py) that a resumed run ends with the weights of an
uninterrupted one, so the weights checksum and the loss curve are compared bit for bit;
sampling is deterministic per seed, so a completed cohort has the reference's pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from generation.generators import load_pipeline, train_generator, training
from generation.models import Cohort, Generator, Tile
from tests.faults.harness import (
    KillPlan,
    Run,
    command_env,
    kill_plans,
    record,
    run_command,
    stored_tiles,
    strays,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# The tiny preset, shortened: two checkpoints per phase, a few seconds of CPU per run.
TRAIN = [
    *("train_generator", "--dataset", "gen-fixture", "--scheme", "morphology"),
    *("--preset", "tiny", "--max-tiles", "16", "--set", "batch_size=4"),
    *("--set", "vae_steps=4", "--set", "unet_steps=4", "--set", "checkpoint_every=2"),
]
GENERATOR_FIELDS = (
    *("backbone", "scheme", "preset", "config", "dataset__name", "split", "tiles_trained"),
    *("vae_steps", "unet_steps", "final_loss", "weights_sha256"),
)
PIPELINE_FILES = ["histostudy.json", "loss.csv"]


def generator_state(name: str) -> dict:
    """The registered generator and its pipeline folder, after checking nothing else is left."""
    row = Generator.objects.filter(name=name).values(*GENERATOR_FIELDS).get()
    folder = Path(Generator.objects.get(name=name).path)
    work = Path(settings.HISTOSTUDY_GENERATORS_DIR) / name
    assert folder == work / "pipeline"
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint", "pipeline"], "leftovers"
    assert [p.name for p in (work / "checkpoint").iterdir()] == ["state.pt"], "leftovers"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    trained = sorted(
        Generator.objects.get(name=name).training_tiles.values_list("sha256", flat=True)
    )
    return {"row": row, "files": files, "trained": trained} | {
        f: (folder / f).read_text() for f in PIPELINE_FILES
    }


def sample(name: str) -> np.ndarray:
    """One tile from the registered pipeline (which load_pipeline checks against the checksum)."""
    pipeline = load_pipeline(Generator.objects.get(name=name), "cpu")
    return pipeline.generate(["Histology image of cancer tissue"], [5], steps=2)


def wrote_checkpoint(killed: Run) -> bool:
    """Whether a complete checkpoint had been renamed into place before the kill."""
    renamed = [e.rsplit(" -> ", 1)[-1] for _, e in killed.events[:-1] if e.startswith("rename")]
    return any(Path(target).name in ("checkpoint", "state.pt") for target in renamed)


def test_train_generator_killed_anywhere_resumes_to_the_uninterrupted_weights(
    annotated: str, tmp_path: Path
) -> None:
    env = command_env(Path(settings.MEDIA_ROOT), Path(settings.HISTOSTUDY_GENERATORS_DIR))
    events = tmp_path / "events.txt"
    reference = run_command([*TRAIN, "--name", "reference"], env, events).check()
    expected, pixels = generator_state("reference"), sample("reference")
    assert (expected["row"]["vae_steps"], expected["row"]["unet_steps"]) == (4, 4)
    kills = []
    # This seed draws a kill mid-autoencoder (resumed from its first checkpoint: the random
    # state must come back too), one between removing the old pipeline folder and renaming
    # the new one in, and one after the registration; the summary line lists them.
    plans = kill_plans(reference, np.random.default_rng(103), by_event=3, timed=1)
    for i, plan in enumerate(plans):
        name = f"killed-{i}"
        killed = run_command([*TRAIN, "--name", name], env, events, plan)
        assert killed.killed or plan.after is not None, killed.stderr[-2000:]
        registered = Generator.objects.filter(name=name).exists()
        resumed = run_command([*TRAIN, "--name", name, "--resume"], env, events).check()
        if wrote_checkpoint(killed) and not registered:
            assert "resumed at" in resumed.stdout, f"killed at {plan}: {killed.where()}"
        state = generator_state(name)
        assert state == expected, f"killed at {plan}: {killed.where()}"
        assert np.array_equal(sample(name), pixels)
        kills.append((plan, killed))
    record("train_generator --resume", kills, "registered once, same weights, loss curve, files")


@pytest.fixture
def generator_for_cohorts(annotated: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A tiny generator trained one step per phase: enough for deterministic pixels."""
    monkeypatch.setattr(training, "write_previews", lambda *args, **kwargs: None)
    overrides = {"vae_steps": "1", "unet_steps": "1", "batch_size": "4"}
    train_generator(
        dataset=annotated,
        scheme="morphology",
        preset="tiny",
        name="tiny",
        max_tiles=16,
        overrides=overrides,
        progress=False,
    )
    return "tiny"


def cohort_state(name: str, media: Path) -> dict:
    """The cohort's members and synthetic tiles, after checking its files are exactly them."""
    cohort = Cohort.objects.get(name=name)
    assert cohort.completed_at is not None
    members = cohort.members.order_by("kind", "position")
    synthetic = Tile.objects.filter(cohort=cohort)
    shas = set(synthetic.values_list("sha256", flat=True))
    assert len(shas) == synthetic.count() == cohort.size, "one row per synthetic tile"
    assert stored_tiles(media) == shas, "every file is a synthetic tile of the cohort and back"
    assert not strays(media), f"left in MEDIA_ROOT: {strays(media)}"
    return {
        "plan": cohort.plan,
        "members": list(
            members.values_list("kind", "position", "tile__sha256", "label", "cluster")
        ),
        "provenance": sorted(
            (t.provenance["position"], t.sha256, t.provenance) for t in synthetic.order_by()
        ),
    }


def test_generate_cohort_killed_anywhere_then_run_again_has_the_uninterrupted_pixels(
    generator_for_cohorts: str, tmp_path: Path
) -> None:
    def generate(name: str, kill: KillPlan | None = None) -> tuple[Run, Path]:
        media = tmp_path / name / "media"
        argv = [
            *("generate_cohort", "--generator", generator_for_cohorts, "--name", name),
            *("--real-dataset", "gen-fixture", "--split", "valid", "--size", "8"),
            *("--seed", "3", "--steps", "2", "--batch-size", "2", "--device", "cpu"),
        ]
        env = command_env(media, tmp_path / "generators")
        return run_command(argv, env, tmp_path / name / "events.txt", kill), media

    reference, media = generate("reference")
    expected = cohort_state("reference", media)
    assert len(expected["members"]) == 16
    kills = []
    for i, plan in enumerate(kill_plans(reference.check(), np.random.default_rng(3), 2, 1)):
        name = f"killed-{i}"
        killed, media = generate(name, plan)
        assert killed.killed or plan.after is not None, killed.stderr[-2000:]
        generate(name)[0].check()
        assert cohort_state(name, media) == expected, f"killed at {plan}: {killed.where()}"
        kills.append((plan, killed))
    record("generate_cohort", kills, "same members, same pixels, no orphan or staged file")

"""train_generator and generate_cohort with the tiny preset on fixture tiles (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation import generators
from generation.cohorts import CohortRequest, Runtime, generate_cohort
from generation.cohorts import storage as cohort_storage
from generation.generators import train_generator
from generation.ldm.config import SamplingConfig
from generation.models import Cohort, CohortMember, Generator, Tile
from generation.presets import PRESETS
from generation.tiles.store import read_tile
from tests.generation.conftest import fixture_cohort, train_tiny

pytestmark = pytest.mark.django_db


def store_files(media: Path) -> set[str]:
    return {p.stem for p in (media / "tiles").rglob("*.png")}


def test_tiny_preset_trains_registers_and_reloads(annotated):
    g = train_tiny(annotated)  # trained here, not a copy: this is the test of training
    assert g.training_tiles.count() == g.tiles_trained == 64
    folder = Path(g.path)
    assert {p.name for p in folder.iterdir()} >= {
        "vae",
        "unet",
        "histostudy.json",
        "loss.csv",
    }
    assert (g.tiles_trained, g.vae_steps, g.unet_steps) == (
        64,
        PRESETS["tiny"].generator.vae_steps,
        PRESETS["tiny"].generator.unet_steps,
    )
    assert g.scheme == "morphology" and g.backbone == "compact" and len(g.weights_sha256) == 64
    assert len((folder / "loss.csv").read_text().splitlines()) == 1 + g.vae_steps + g.unet_steps
    pipeline = generators.load_pipeline(g, "cpu")
    tiles = pipeline.generate(
        ["Histology image of cancer tissue, morphology type one"], [7], steps=2
    )
    assert tiles.shape == (1, 96, 96, 3) and tiles.dtype == np.uint8


def test_cohort_is_stratified_balanced_and_held_out(tiny_generator, isolated_storage):
    summary = fixture_cohort("c16", 16, seed=3, runtime=Runtime(batch_size=8))
    assert (summary.real, summary.synthetic, summary.generated_now) == (16, 16, 16)
    cohort = Cohort.objects.get(name="c16")
    real = cohort.members.filter(kind="real").select_related("tile")
    synthetic = cohort.members.filter(kind="synthetic").select_related("tile")
    assert sorted(m.label for m in real) == [0] * 8 + [1] * 8
    assert sorted((m.label, m.cluster, m.prompt) for m in real) == sorted(
        (m.label, m.cluster, m.prompt) for m in synthetic
    )
    scheme = tiny_generator.scheme
    annotated = {m.position: m.tile.annotation.prompts[scheme] for m in real}
    trained = set(tiny_generator.training_tiles.values_list("sha256", flat=True))
    assert len(trained) == tiny_generator.tiles_trained
    assert all(m.tile.split == "valid" and m.tile.sha256 not in trained for m in real)
    for m in synthetic:
        assert (
            m.tile.kind == "synthetic"
            and m.tile.cohort_id == cohort.pk
            and m.tile.dataset_id is None
        )
        prov = m.tile.provenance
        assert (prov["generator"], prov["steps"], prov["scheduler"]) == ("tiny", 2, "dpm++")
        assert "prompt" not in prov, "the prompt is kept once, in the cohort's plan"
        assert m.prompt == annotated[m.position], "the prompt of its real counterpart"
        assert read_tile(m.tile.path).shape == (96, 96, 3)
    assert len({m.tile.provenance["seed"] for m in synthetic}) == 16


def test_same_generator_prompt_and_seed_give_the_same_pixels(tiny_generator):
    for name in ("a", "b"):
        fixture_cohort(name, 6, seed=11)
    tiles = {
        name: [
            m.tile.sha256
            for m in CohortMember.objects.filter(cohort__name=name, kind="synthetic")
            .select_related("tile")
            .order_by("position")
        ]
        for name in ("a", "b")
    }
    assert tiles["a"] == tiles["b"]


def test_stochastic_sampler_draws_each_tiles_noise_from_its_own_seed(tiny_generator):
    pipeline = generators.load_pipeline(Generator.objects.get(name="tiny"), "cpu")
    prompts, seeds = ["healthy tissue"] * 3, [3, 4, 5]  # one prompt: no padding differs
    decode, latents = pipeline._decode, []

    def keep(z):  # the sampler's final latents, before the (barely trained) decoder
        latents.append(z.clone())
        return decode(z)

    pipeline._decode = keep

    def draw(scheduler: str, batch_size: int) -> np.ndarray:
        latents.clear()
        pipeline.generate(prompts, seeds, steps=3, scheduler=scheduler, batch_size=batch_size)
        return np.concatenate([z.numpy() for z in latents])

    together, alone = draw("dpm++-sde", 3), draw("dpm++-sde", 1)
    # a tile's noise does not depend on its batch (up to the rounding of batched arithmetic)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    # and the sampler did inject noise: the deterministic one ends elsewhere
    assert np.abs(together - draw("dpm++", 3)).mean() > 0.01  # 100x the tolerance above


def test_bf16_precision_runs_the_networks_in_bf16_and_is_recorded(tiny_generator):
    prompts, seeds = ["Histology image of cancer tissue, morphology type one"] * 4, [1, 2, 3, 4]
    fp32 = generators.load_pipeline(tiny_generator, "cpu").generate(prompts, seeds, steps=2)
    bf16 = generators.load_pipeline(tiny_generator, "cpu", precision="bf16")
    again = bf16.generate(prompts, seeds, steps=2)
    assert np.array_equal(again, bf16.generate(prompts, seeds, steps=2))  # deterministic
    assert not np.array_equal(fp32, again)  # bf16 rounding shows: autocast was on
    assert np.abs(fp32.astype(int) - again).mean() < 8  # and it is the same picture
    fixture_cohort("bf16", 2, runtime=Runtime(precision="bf16"))
    assert {t.provenance["precision"] for t in Tile.objects.filter(cohort__name="bf16")} == {"bf16"}


def test_killed_generation_resumes_to_exactly_n_without_orphans(
    tiny_generator, monkeypatch, isolated_storage
):
    real_store = cohort_storage._store_batch
    calls = {"n": 0}

    def store_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while the second batch is written
        return real_store(*args, **kwargs)

    monkeypatch.setattr(cohort_storage, "_store_batch", store_then_die)
    request = CohortRequest(
        generator="tiny", real_dataset="gen-fixture", split="valid", size=16, name="k", seed=5,
        sampling=SamplingConfig(steps=2),
    )  # fmt: skip
    runtime = Runtime(batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(request, runtime, progress=False)
    assert CohortMember.objects.filter(cohort__name="k", kind="synthetic").count() == 4
    monkeypatch.setattr(cohort_storage, "_store_batch", real_store)
    summary = generate_cohort(request, runtime, progress=False)
    assert summary.generated_now == 12 and summary.synthetic == 16
    cohort = Cohort.objects.get(name="k")
    assert cohort.members.filter(kind="synthetic").values("tile").distinct().count() == 16
    registered = set(Tile.objects.values_list("sha256", flat=True))
    assert store_files(isolated_storage) <= registered, "no file without a row"
    assert not (isolated_storage / ".staging").exists() or not any(
        (isolated_storage / ".staging").iterdir()
    )


def test_resume_training_after_a_kill(annotated, settings, tmp_path, monkeypatch):
    from generation.ldm import train as train_module

    real_record = train_module.Trainer._record

    def record_then_die(self, phase, step, loss, bar):
        real_record(self, phase, step, loss, bar)
        if phase == "denoiser" and step == 7:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module.Trainer, "_record", record_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_generator(dataset=annotated, scheme="label", preset="tiny", name="r", progress=False)
    assert not Generator.objects.filter(name="r").exists()
    with pytest.raises(generators.GeneratorError, match="pass --resume"):
        train_generator(dataset=annotated, scheme="label", preset="tiny", name="r", progress=False)
    monkeypatch.setattr(train_module.Trainer, "_record", real_record)
    summary = train_generator(
        dataset=annotated, scheme="label", preset="tiny", name="r", resume=True, progress=False,
        previews=False,
    )  # fmt: skip
    assert (summary.vae_steps, summary.unet_steps) == (10, 10)
    losses = (Path(summary.path) / "loss.csv").read_text().splitlines()
    assert len(losses) == 1 + 10 + 10, "steps 6-7 after the checkpoint are redone, not doubled"


def test_bad_requests_are_clear_errors_with_nothing_written(
    tiny_generator, annotated, isolated_storage
):
    before = (
        Cohort.objects.count(),
        Generator.objects.count(),
        Tile.objects.count(),
        store_files(isolated_storage),
    )
    cases = [
        (
            [
                "generate_cohort",
                "--generator",
                "tiny",
                "--real-dataset",
                annotated,
                "--split",
                "train",
                "--size",
                "8",
                "--name",
                "x",
            ],
            "empty stratum",
        ),
        (
            [
                "generate_cohort",
                "--generator",
                "tiny",
                "--real-dataset",
                annotated,
                "--split",
                "valid",
                "--size",
                "8",
                "--name",
                "x",
                "--device",
                "cuda",
            ],
            "--device cuda was asked for",
        ),
        (
            [
                "generate_cohort",
                "--generator",
                "nope",
                "--real-dataset",
                annotated,
                "--split",
                "valid",
                "--size",
                "8",
                "--name",
                "x",
            ],
            "no generator 'nope'",
        ),
        (
            [
                "train_generator",
                "--dataset",
                annotated,
                "--scheme",
                "prose",
                "--preset",
                "tiny",
                "--name",
                "y",
            ],
            "invalid choice: 'prose'",
        ),
        (
            [
                "train_generator",
                "--dataset",
                annotated,
                "--scheme",
                "label",
                "--preset",
                "tiny",
                "--name",
                "tiny",
            ],
            "registered already",
        ),
        (
            [
                "train_generator",
                "--dataset",
                annotated,
                "--scheme",
                "label",
                "--preset",
                "tiny",
                "--name",
                "z",
                "--set",
                "colour=blue",
            ],
            "unknown config field 'colour'",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(CommandError, match=message):
            call_command(*argv)
    assert (
        Cohort.objects.count(),
        Generator.objects.count(),
        Tile.objects.count(),
        store_files(isolated_storage),
    ) == before


def test_corrupt_or_missing_weights_are_refused(tiny_generator):
    generate = ["generate_cohort", "--generator", "tiny", "--real-dataset", "gen-fixture"]
    generate += ["--split", "valid", "--size", "4", "--name", "x"]
    weights = next(Path(tiny_generator.path).rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CommandError, match="do not match the registered checksum"):
        call_command(*generate)
    for path in Path(tiny_generator.path).rglob("*.safetensors"):
        path.unlink()
    with pytest.raises(CommandError, match="no weight files"):
        call_command(*generate)
    assert not Cohort.objects.exists()


def test_registry_and_cohort_in_admin(tiny_generator, admin_client, client):
    from django.urls import reverse

    fixture_cohort("adm", 4)
    page = admin_client.get(reverse("admin:generation_generator_change", args=[tiny_generator.pk]))
    assert (
        page.status_code == 200 and b"samples.png" in page.content and b"loss.png" in page.content
    )
    # the training tiles are a count on the page, not a field anyone can edit
    html = page.content.decode()
    assert "training tiles recorded" in html.lower() and 'name="training_tiles"' not in html
    for kind in ("samples", "loss"):
        url = reverse("generation:generator-preview", args=[tiny_generator.pk, kind])
        image = admin_client.get(url)
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
        assert client.get(url).status_code == 302  # staff only
    cohort = Cohort.objects.get(name="adm")
    detail = admin_client.get(reverse("admin:generation_cohort_change", args=[cohort.pk]))
    assert detail.status_code == 200 and b"<th>cluster</th>" in detail.content
    assert detail.content.count(b'class="tile-thumb"') == 8


def test_a_budget_too_short_for_the_minimum_steps_fails_and_keeps_nothing(annotated):
    with pytest.raises(generators.GeneratorError) as caught:
        train_generator(dataset=annotated, scheme="label", preset="tiny", name="short",
                        overrides={"min_unet_steps": "50"}, progress=False)  # fmt: skip
    message = str(caught.value)  # refused before any training
    assert not isinstance(caught.value, generators.TrainingTimeError)  # steps, not time
    assert "the denoiser is set to 10 steps, fewer than the 50 it needs" in message
    assert "min_unet_steps" in message and "ask for at least 50" in message
    assert not Generator.objects.filter(name="short").exists()
    assert not (generators.generators_root() / "short").exists()
    # a time budget too short for the minimum steps: refused with what they need
    with pytest.raises(generators.GeneratorError) as caught:
        train_generator(dataset=annotated, scheme="label", preset="tiny", name="short",
                        overrides={"unet_steps": "100000", "min_unet_steps": "50000"},
                        max_minutes=0.05, progress=False)  # fmt: skip
    message = str(caught.value)  # refused at the speed probe, before the first step
    assert isinstance(caught.value, generators.TrainingTimeError)  # more minutes would do
    assert "minimum steps (0 autoencoder + 50000 denoiser" in message
    assert "this time budget leaves" in message and "give it about" in message
    assert not Generator.objects.filter(name="short").exists()
    assert not (generators.generators_root() / "short").exists()

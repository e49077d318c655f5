"""Scenario builders: users, and cohorts made straight from fixture pixels (no generator run).

bench/readers.py builds its load-test study with the same functions.
"""

from __future__ import annotations

from pathlib import Path

import factory
import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from generation.models import Cohort, CohortMember, Dataset, Generator, Tile
from generation.tiles.store import encode_png, pixel_sha256, tile_relpath, write_atomic
from studies.models import Study

PASSWORD = "read-tiles-2026"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"reader{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def fixture_pixels(seed: int, synthetic: bool) -> np.ndarray:
    """H&E-like noise; synthetic tiles are smoother, so a test can tell them apart by eye."""
    rng = np.random.default_rng(seed)
    tile = np.empty((96, 96, 3), np.float64)
    tile[:] = (228, 178, 208) if not synthetic else (220, 170, 205)
    yy, xx = np.mgrid[:96, :96]
    for _ in range(rng.integers(6, 14)):
        cy, cx, r = rng.integers(0, 96), rng.integers(0, 96), rng.integers(3, 9)
        tile[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (110, 60, 150)
    tile += rng.normal(0, 3 if synthetic else 7, tile.shape)
    return np.clip(tile, 0, 255).astype(np.uint8)


def _store(pixels: np.ndarray) -> str:
    sha = pixel_sha256(pixels)
    path = Path(settings.MEDIA_ROOT) / tile_relpath(sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, encode_png(pixels))
    return sha


def generator_row(
    name: str, dataset: Dataset, scheme: str = "morphology", path: str = "/nowhere"
) -> Generator:
    """A registered generator with no weights behind it: for rows that only point at one."""
    return Generator.objects.create(
        name=name,
        backbone="compact",
        scheme=scheme,
        preset="tiny",
        config={},
        dataset=dataset,
        split="train",
        tiles_trained=0,
        vae_steps=0,
        unet_steps=0,
        wall_seconds=0.0,
        path=path,
        weights_sha256="0" * 64,
    )


def cohort_from_fixture_tiles(name: str = "fixture-cohort", per_stratum: int = 5) -> Cohort:
    """A complete cohort: per_stratum tiles of each kind x label, files in MEDIA_ROOT."""
    dataset = Dataset.objects.create(name=f"{name}-real")
    # a generator that trained on no tile of this cohort
    folder = Path(settings.MEDIA_ROOT) / "generators" / f"{name}-generator"
    generator = generator_row(f"{name}-generator", dataset, path=str(folder))
    cohort = Cohort.objects.create(
        name=name,
        generator=generator,
        real_dataset=dataset,
        split="valid",
        size=2 * per_stratum,
        seed=1,
        steps=2,
        guidance=7.5,
        scheduler="dpm++",
        plan=[],
        completed_at=timezone.now(),
    )
    seed = 0
    for kind in ("real", "synthetic"):
        for label in (0, 1):
            for position in range(per_stratum):
                seed += 1
                sha = _store(fixture_pixels(seed, kind == "synthetic"))
                owner = {"dataset": dataset} if kind == "real" else {"cohort": cohort}
                tile = Tile.objects.create(
                    sha256=sha,
                    kind=kind,
                    label=label,
                    split="valid",
                    width=96,
                    height=96,
                    source=f"valid/{label}/patch{seed:07d}.jpg" if kind == "real" else "",
                    provenance={"generator": generator.name} if kind == "synthetic" else {},
                    **owner,
                )
                CohortMember.objects.create(
                    cohort=cohort,
                    tile=tile,
                    kind=kind,
                    position=label * per_stratum + position,
                    label=label,
                    cluster=position % 3,
                )
    names = ("healthy", "tumour")
    cohort.plan = [
        {
            "position": m.position, "tile_id": m.tile_id, "label": m.label,
            "cluster": m.cluster, "prompt": f"Histology image of {names[m.label]} tissue",
            "seed": m.position,
        }
        for m in cohort.members.filter(kind="real").order_by("position")
    ]  # fmt: skip
    cohort.save(update_fields=["plan"])
    return cohort


def second_arm(cohort: Cohort, name: str, scheme: str = "label") -> Cohort:
    """Another arm for a study over `cohort`: a cohort of another generator (trained on no tile
    here) with the same real tiles and new synthetic ones of the same labels."""
    generator = generator_row(f"{name}-generator", cohort.real_dataset, scheme=scheme)
    arm = Cohort.objects.create(
        name=name, generator=generator, real_dataset=cohort.real_dataset, split=cohort.split,
        size=cohort.size, seed=2, steps=2, guidance=3.0, scheduler="dpm++", plan=cohort.plan,
        completed_at=timezone.now(),
    )  # fmt: skip
    offset = 10_000 + 1_000 * Cohort.objects.count()
    for i, member in enumerate(cohort.members.order_by("id")):
        tile = member.tile
        if member.kind == "synthetic":
            sha = _store(fixture_pixels(offset + i, True))
            tile = Tile.objects.create(
                sha256=sha, kind="synthetic", label=member.label, split=tile.split, width=96,
                height=96, provenance={"generator": generator.name},
                cohort=arm,
            )  # fmt: skip
        CohortMember.objects.create(
            cohort=arm, tile=tile, kind=member.kind, position=member.position,
            label=member.label, cluster=member.cluster,
        )  # fmt: skip
    return arm


def open_study(
    cohort: Cohort,
    readers: list,
    name: str = "turing-test",
    cases: int = 10,
    arms: tuple[Cohort, ...] = (),
    **fields,
) -> Study:
    study = Study.objects.create(
        name=name,
        title="Real or synthetic?",
        instructions="Judge each tile.",
        cohort=cohort,
        cases_per_reader=cases,
        seed=20261125,
        **fields,
    )
    study.readers.set(readers)
    study.other_arms.set(arms)
    study.open()
    return study

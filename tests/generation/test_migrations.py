"""Data migrations keep what earlier versions stored: run on rows written in the old schema."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from generation.models import Cohort, Dataset, Tile
from tests.factories import generator_row

BEFORE = ("generation", "0008_fid_floor_of")
AFTER = ("generation", "0009_results_generator_foreign_key")


def migrate(target: tuple[str, str]):
    """Migrate the test database to `target`; the models of that state. Going back unapplies
    the other apps' migrations that depend on later ones (studies' arms need generation's
    training tiles): `restore` applies every app's again."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def restore() -> None:
    """Every app back at its latest migration, as the other tests expect."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_results_that_recorded_a_generator_name_get_the_generator():
    try:
        old = migrate(BEFORE)
        # Dataset, Generator and Cohort have the same tables in both states
        dataset = Dataset.objects.create(name="ds")
        generators = {
            name: generator_row(name, dataset, scheme)
            for name, scheme in (("gen-label", "label"), ("gen-morph", "morphology"))
        }
        cohort = Cohort.objects.create(
            name="c", generator=generators["gen-label"], real_dataset=dataset, split="valid",
            size=2, seed=1, steps=2, guidance=3.0, scheduler="dpm++", plan=[],
            completed_at=timezone.now(),
        )  # fmt: skip
        OldFid, OldUtility = (
            old.get_model("generation", m) for m in ("FidResult", "UtilityResult")
        )
        common = dict(set_a="a", set_b="b", n_a=2, n_b=2, fid=1.0, kid_mean=0.0, kid_std=0.0,
                      kid_subsets=1, kid_subset_size=2, seed=0, extractor="x",
                      weights_sha256="0" * 64, preprocessing="x")  # fmt: skip
        # a name that disagrees with the cohort: the cohort's generator is the fact
        with_cohort = OldFid.objects.create(
            name="1", cohort_id=cohort.pk, generator="renamed", scheme="label", **common
        ).pk
        by_name = OldFid.objects.create(
            name="2", generator="gen-morph", scheme="morphology", **common
        ).pk
        real = OldFid.objects.create(name="3", generator="", scheme="", floor=True, **common).pk
        utility = OldUtility.objects.create(
            arm="synthetic", cohort_id=cohort.pk, generator="gen-label", scheme="label",
            synthetic_share=1.0, n_real=0, n_synthetic=2, test_dataset="ds", test_split="valid",
            n_test=2, n_test_tumour=1, preset="tiny", seed=0, config={}, steps=1,
            stopped_early=False, seconds=1.0, device="cpu", auc=0.5, auc_se=0.1, auc_low=0.0,
            auc_high=1.0,
            accuracy=0.5, accuracy_low=0.0, accuracy_high=1.0, sensitivity=0.5,
            sensitivity_low=0.0, sensitivity_high=1.0, specificity=0.5, specificity_low=0.0,
            specificity_high=1.0,
        ).pk  # fmt: skip

        new = migrate(AFTER)
        NewFid, NewUtility = (
            new.get_model("generation", m) for m in ("FidResult", "UtilityResult")
        )
        linked = dict(NewFid.objects.values_list("pk", "generator_id"))
        assert linked == {
            with_cohort: generators["gen-label"].pk,
            by_name: generators["gen-morph"].pk,
            real: None,
        }
        assert NewUtility.objects.get(pk=utility).generator_id == generators["gen-label"].pk
    finally:
        restore()


@pytest.mark.django_db(transaction=True)
def test_training_lists_on_disk_become_the_training_tiles_relation(tmp_path):
    try:
        migrate(("generation", "0009_results_generator_foreign_key"))
        dataset = Dataset.objects.create(name="ds")
        other = Dataset.objects.create(name="other")
        tiles = {
            f"t{i}": Tile.objects.create(
                dataset=dataset, sha256=f"{i:064x}", label=i % 2, split="train", width=96,
                height=96,
            )
            for i in range(3)
        }  # fmt: skip
        # the same pixels in another dataset: not what the generator trained on
        Tile.objects.create(dataset=other, sha256=f"{0:064x}", label=0, split="train", width=96,
                            height=96)  # fmt: skip
        listed = tmp_path / "listed"
        listed.mkdir()
        (listed / "training_tiles.txt").write_text(f"{0:064x}\n{2:064x}\n{9:064x}\n")
        with_list = generator_row("with-list", dataset, path=str(listed)).pk
        without = generator_row("without-list", dataset, path=str(tmp_path / "gone")).pk

        new = migrate(("generation", "0010_training_tiles"))
        NewGenerator = new.get_model("generation", "Generator")
        recorded = {
            g.name: sorted(g.training_tiles.values_list("pk", flat=True))
            for g in NewGenerator.objects.filter(pk__in=[with_list, without])
        }
        # a hash that matches no tile of its dataset (the third) is not invented
        assert recorded == {
            "with-list": sorted([tiles["t0"].pk, tiles["t2"].pk]),
            "without-list": [],
        }
    finally:
        restore()


@pytest.mark.django_db(transaction=True)
def test_prompt_copies_go_into_the_cohort_plan_and_come_back_on_rollback():
    try:
        old = migrate(("generation", "0010_training_tiles"))
        OldTile, OldMember = (old.get_model("generation", m) for m in ("Tile", "CohortMember"))
        dataset = Dataset.objects.create(name="ds")
        generator = generator_row("gen", dataset)
        # a plan that lacks position 1 (no cohort generate_cohort made): its members' prompt
        # must not be lost
        cohort = Cohort.objects.create(
            name="c", generator=generator, real_dataset=dataset, split="valid", size=2, seed=1,
            steps=2, guidance=3.0, scheduler="dpm++",
            plan=[{"position": 0, "tile_id": 0, "label": 0, "cluster": 1, "prompt": "A",
                   "seed": 5}],
            completed_at=timezone.now(),
        )  # fmt: skip
        for position, prompt in ((0, "A"), (1, "B")):
            real = OldTile.objects.create(
                dataset_id=dataset.pk, sha256=f"{position:064x}", label=position, split="valid",
                width=96, height=96,
            )  # fmt: skip
            synthetic = OldTile.objects.create(
                cohort_id=cohort.pk, kind="synthetic", sha256=f"{position + 9:064x}",
                label=position, split="valid", width=96, height=96,
                provenance={"prompt": prompt, "position": position, "seed": 5},
            )  # fmt: skip
            for kind, tile in (("real", real), ("synthetic", synthetic)):
                OldMember.objects.create(
                    cohort_id=cohort.pk, tile_id=tile.pk, kind=kind, position=position,
                    label=position, cluster=1, prompt=prompt,
                )  # fmt: skip

        new = migrate(("generation", "0011_prompt_in_the_plan"))
        NewCohort, NewTile = (new.get_model("generation", m) for m in ("Cohort", "Tile"))
        plan = NewCohort.objects.get(pk=cohort.pk).plan
        assert [(p["position"], p["prompt"]) for p in plan] == [(0, "A"), (1, "B")]
        assert plan[1]["tile_id"] == OldTile.objects.get(sha256=f"{1:064x}").pk
        provenances = NewTile.objects.filter(kind="synthetic").values_list("provenance", flat=True)
        assert sorted(p["position"] for p in provenances) == [0, 1]
        assert all("prompt" not in p for p in provenances)

        back = migrate(("generation", "0010_training_tiles"))
        BackMember, BackTile = (back.get_model("generation", m) for m in ("CohortMember", "Tile"))
        assert sorted(BackMember.objects.values_list("kind", "position", "prompt")) == [
            ("real", 0, "A"), ("real", 1, "B"), ("synthetic", 0, "A"), ("synthetic", 1, "B"),
        ]  # fmt: skip
        restored = BackTile.objects.filter(kind="synthetic").values_list("provenance", flat=True)
        assert sorted(p["prompt"] for p in restored) == ["A", "B"]
    finally:
        restore()

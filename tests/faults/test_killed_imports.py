"""import_tiles and annotate_tiles killed with SIGKILL anywhere, then run again: the end state
is the one an uninterrupted run leaves (same tiles, same rows, nothing else on disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from generation.models import (
    Dataset,
    MorphologyCluster,
    MorphologyClustering,
    Tile,
    TileAnnotation,
)
from generation.tiles.importer import import_tiles
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

TILE_FIELDS = ("sha256", "kind", "label", "split", "width", "height", "source", "source_index")
ANNOTATION_FIELDS = ("quality_ok", "quality_reasons", "quality", "features", "cluster", "prompts")
CLUSTERING_FIELDS = (
    *("embedding_key", "k", "seed", "n_init", "fitted_on", "inertia", "vocabulary"),
    *("scaler_mean", "scaler_scale", "centres"),
)
CLUSTER_FIELDS = ("index", "name", "size", "healthy", "tumour", "mean_features")


def import_state(dataset: str, media: Path) -> dict:
    """The dataset's rows, after checking that the files are exactly the rows' tiles."""
    rows = sorted(Tile.objects.filter(dataset__name=dataset).values_list(*TILE_FIELDS))
    files, shas = stored_tiles(media), {row[0] for row in rows}
    assert files == shas, f"files without a row {files - shas}, rows without a file {shas - files}"
    assert not strays(media), f"left in MEDIA_ROOT: {strays(media)}"
    return {"tiles": rows, "counts": Dataset.objects.get(name=dataset).counts()}


def test_import_tiles_killed_anywhere_then_run_again_ends_as_one_uninterrupted_import(
    tile_tree: Path, tmp_path: Path
) -> None:
    def import_as(name: str, kill: KillPlan | None = None) -> tuple[Run, Path]:
        media = tmp_path / name / "media"
        env = command_env(media, tmp_path / name / "generators")
        argv = ["import_tiles", str(tile_tree), "--dataset", name]
        return run_command(argv, env, tmp_path / name / "events.txt", kill), media

    reference, media = import_as("reference")
    expected = import_state("reference", media)
    assert len(expected["tiles"]) == 104
    kills = []
    plans = kill_plans(reference.check(), np.random.default_rng(1), by_event=4, timed=1)
    for i, plan in enumerate(plans):
        name = f"killed-{i}"
        killed, media = import_as(name, plan)
        assert killed.killed or plan.after is not None, killed.stderr[-2000:]
        import_as(name)[0].check()
        assert import_state(name, media) == expected, f"killed at {plan}: {killed.where()}"
        kills.append((plan, killed))
    record("import_tiles", kills, "end state identical to an uninterrupted import")


def annotation_state(dataset: str) -> dict:
    annotations = TileAnnotation.objects.filter(tile__dataset__name=dataset)
    clusterings = MorphologyClustering.objects.filter(dataset__name=dataset)
    assert clusterings.count() == 1, "one clustering per setting, however often it was resumed"
    assert not annotations.filter(quality_ok=True).exclude(clustering=clusterings.get()).exists()
    clusters = MorphologyCluster.objects.filter(clustering__dataset__name=dataset)
    return {
        "annotations": sorted(annotations.values_list("tile__sha256", *ANNOTATION_FIELDS)),
        "clustering": list(clusterings.values(*CLUSTERING_FIELDS)),
        "clusters": sorted(clusters.values_list(*CLUSTER_FIELDS)),
    }


def forget_annotations(dataset: str) -> None:
    TileAnnotation.objects.filter(tile__dataset__name=dataset).delete()
    MorphologyClustering.objects.filter(dataset__name=dataset).delete()


def test_annotate_tiles_killed_anywhere_then_run_again_ends_as_one_uninterrupted_run(
    tile_tree: Path, tmp_path: Path
) -> None:
    import_tiles(tile_tree, "fixture", progress=False)
    env = command_env(Path(settings.MEDIA_ROOT), tmp_path / "generators")
    argv = ["annotate_tiles", "--dataset", "fixture", "--clusters", "3"]
    events = tmp_path / "events.txt"
    reference = run_command(argv, env, events).check()
    expected = annotation_state("fixture")
    assert len(expected["annotations"]) == 104 and len(expected["clusters"]) == 3
    kills = []
    for plan in kill_plans(reference, np.random.default_rng(2), by_event=3, timed=1):
        forget_annotations("fixture")
        killed = run_command(argv, env, events, plan)
        assert killed.killed or plan.after is not None, killed.stderr[-2000:]
        run_command(argv, env, events).check()
        assert annotation_state("fixture") == expected, f"killed at {plan}: {killed.where()}"
        kills.append((plan, killed))
    record("annotate_tiles", kills, "annotations, clustering and prompts identical")

"""The prompt of a cohort position is kept once, in the cohort's plan: the copies on both of its
members and in the synthetic tile's provenance go. A position the plan lacks (none that
generate_cohort made) is added to it from its members first, so that no prompt is lost."""

from django.db import migrations, models


def into_plan(apps, schema_editor) -> None:
    Cohort = apps.get_model("generation", "Cohort")
    Tile = apps.get_model("generation", "Tile")
    for cohort in Cohort.objects.all():
        planned = {int(p["position"]) for p in cohort.plan}
        missing = {}
        for m in cohort.members.order_by("kind", "position"):
            if m.position not in planned and m.position not in missing:
                missing[m.position] = {
                    "position": m.position, "label": m.label, "cluster": m.cluster,
                    "prompt": m.prompt,
                }  # fmt: skip
            if m.kind == "real" and m.position in missing:
                missing[m.position]["tile_id"] = m.tile_id
        if missing:
            cohort.plan = sorted([*cohort.plan, *missing.values()], key=lambda p: p["position"])
            cohort.save(update_fields=["plan"])
    tiles = list(Tile.objects.filter(kind="synthetic", provenance__has_key="prompt"))
    for tile in tiles:
        del tile.provenance["prompt"]
    Tile.objects.bulk_update(tiles, ["provenance"], batch_size=500)


def out_of_plan(apps, schema_editor) -> None:
    """Back to the copies, for a rollback to the code that reads them."""
    Cohort = apps.get_model("generation", "Cohort")
    CohortMember = apps.get_model("generation", "CohortMember")
    Tile = apps.get_model("generation", "Tile")
    for cohort in Cohort.objects.all():
        prompts = {int(p["position"]): p["prompt"] for p in cohort.plan}
        members = list(cohort.members.select_related("tile"))
        for m in members:
            m.prompt = prompts.get(m.position, "")
        CohortMember.objects.bulk_update(members, ["prompt"], batch_size=500)
        tiles = [m.tile for m in members if m.kind == "synthetic" and m.tile.cohort_id == cohort.pk]
        for tile in tiles:
            tile.provenance["prompt"] = prompts.get(tile.provenance.get("position"), "")
        Tile.objects.bulk_update(tiles, ["provenance"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0010_training_tiles"),
    ]

    operations = [
        # a default, so that a rollback can add the column back to rows that exist
        migrations.AlterField(
            model_name="cohortmember", name="prompt", field=models.TextField(default="")
        ),
        migrations.RunPython(into_plan, out_of_plan),
        migrations.RemoveField(model_name="cohortmember", name="prompt"),
    ]

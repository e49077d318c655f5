"""A generator's training tiles become a relation: read from the training_tiles.txt its
pipeline folder held until now (a missing or unreadable file leaves none recorded, which
training_tiles() then reports as an error instead of "no training tiles")."""

from pathlib import Path

from django.db import migrations, models

LIST = "training_tiles.txt"


def load_lists(apps, schema_editor) -> None:
    Generator = apps.get_model("generation", "Generator")
    Tile = apps.get_model("generation", "Tile")
    through = Generator.training_tiles.through
    for generator in Generator.objects.all():
        try:
            shas = (Path(generator.path) / LIST).read_text().split()
        except (OSError, UnicodeDecodeError) as exc:
            # its cohorts and evaluations will refuse it, naming it, until it is retrained
            print(f"\n  generator {generator.name!r}: training tiles not recorded ({exc})")
            continue
        for start in range(0, len(shas), 900):
            ids = Tile.objects.filter(
                dataset_id=generator.dataset_id, sha256__in=shas[start : start + 900]
            ).values_list("id", flat=True)
            through.objects.bulk_create(
                through(generator_id=generator.pk, tile_id=tile_id) for tile_id in ids
            )


def write_lists(apps, schema_editor) -> None:
    """Back to files, for a rollback to the code that reads them. Only a complete list is
    written: the old code reads a partial or empty file as "hold out only these", whereas a
    missing file stops it with an error."""
    Generator = apps.get_model("generation", "Generator")
    for generator in Generator.objects.all():
        shas = list(generator.training_tiles.values_list("sha256", flat=True))
        folder = Path(generator.path)
        complete = len(shas) == generator.tiles_trained
        if complete and folder.is_dir() and not (folder / LIST).exists():
            (folder / LIST).write_text("".join(f"{s}\n" for s in shas))


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0009_results_generator_foreign_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="generator",
            name="training_tiles",
            field=models.ManyToManyField(
                blank=True, related_name="trained_generators", to="generation.tile"
            ),
        ),
        migrations.AlterField(
            model_name="tileannotation",
            name="features",
            field=models.JSONField(
                help_text="morphometric features (generation.annotation.features)"
            ),
        ),
        migrations.RunPython(load_lists, write_lists),
    ]

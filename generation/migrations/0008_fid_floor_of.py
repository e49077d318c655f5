"""FidResult.floor_of: a floor row points at the comparison it was measured beside, instead of
being matched to it by the reference set's display name."""

import django.db.models.deletion
from django.db import migrations, models


def link_floors(apps, schema_editor) -> None:
    """Floors stored before the link: compute_fid wrote each floor right after its comparison,
    with the same label and, as set B, the comparison's reference set or a half of it."""
    FidResult = apps.get_model("generation", "FidResult")
    for floor in FidResult.objects.filter(floor=True, floor_of__isnull=True):
        reference = floor.set_b.split(" (")[0]
        match = (
            FidResult.objects.filter(
                floor=False,
                label=floor.label,
                set_b=reference,
                pk__lt=floor.pk,  # stored before it
            )
            .order_by("-pk")
            .first()
        )
        if match is not None:
            FidResult.objects.filter(pk=floor.pk).update(floor_of=match)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0007_fidelity_evaluation"),
    ]

    operations = [
        migrations.AddField(
            model_name="fidresult",
            name="floor_of",
            field=models.ForeignKey(
                blank=True,
                help_text="a floor row: the comparison it was measured beside (same run, label, "
                "sizes)",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="floors",
                to="generation.fidresult",
            ),
        ),
        migrations.RunPython(link_floors, migrations.RunPython.noop),
    ]

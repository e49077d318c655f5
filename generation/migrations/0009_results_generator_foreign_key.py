"""FID and utility results point at their generator instead of copying its name and scheme."""

import django.db.models.deletion
from django.db import migrations, models

RESULTS = ("FidResult", "UtilityResult")


def link_generators(apps, schema_editor) -> None:
    """The generator of each result: its cohort's (cohorts protect their generator, so every
    result with a cohort has one), else the generator of the name the row recorded."""
    Generator = apps.get_model("generation", "Generator")
    by_name = dict(Generator.objects.values_list("name", "pk"))
    for model in RESULTS:
        Result = apps.get_model("generation", model)
        for row in Result.objects.select_related("cohort").exclude(generator_name=""):
            found = row.cohort.generator_id if row.cohort_id else by_name.get(row.generator_name)
            Result.objects.filter(pk=row.pk).update(generator_id=found)


def copy_names_back(apps, schema_editor) -> None:
    for model in RESULTS:
        Result = apps.get_model("generation", model)
        for row in Result.objects.select_related("generator").exclude(generator=None):
            Result.objects.filter(pk=row.pk).update(
                generator_name=row.generator.name, scheme=row.generator.scheme
            )


def foreign_key(related_name: str, help_text: str) -> models.ForeignKey:
    return models.ForeignKey(
        blank=True,
        help_text=help_text,
        null=True,
        on_delete=django.db.models.deletion.PROTECT,
        related_name=related_name,
        to="generation.generator",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0008_fid_floor_of"),
    ]

    operations = [
        migrations.RenameField("fidresult", "generator", "generator_name"),
        migrations.RenameField("utilityresult", "generator", "generator_name"),
        migrations.AddField(
            "fidresult",
            "generator",
            foreign_key("fid_results", "the cohort's generator; empty: real vs real"),
        ),
        migrations.AddField(
            "utilityresult",
            "generator",
            foreign_key(
                "utility_results", "the cohort's generator; empty: trained on real tiles only"
            ),
        ),
        migrations.RunPython(link_generators, copy_names_back),
        migrations.RemoveField("fidresult", "generator_name"),
        migrations.RemoveField("fidresult", "scheme"),
        migrations.RemoveField("utilityresult", "generator_name"),
        migrations.RemoveField("utilityresult", "scheme"),
    ]

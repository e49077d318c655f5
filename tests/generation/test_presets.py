"""One table of named sizes (generation/presets.py): every command offers the same names, and
each part of the pipeline reads its size from the entry, not from a table of its own."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.management import load_command_class

from generation.evaluation.measures import reader_config
from generation.evaluation.utility import UtilityError, classifier_config
from generation.experiment.options import options_for
from generation.generators import GeneratorError
from generation.generators.training import config_for
from generation.presets import PRESETS, PresetError, preset

COMMANDS = (
    ("generation", "train_generator", "preset"),
    ("generation", "evaluate_utility", "preset"),
    ("generation", "run_experiment", "preset"),
    ("generation", "evaluate_generator", "classifier_preset"),
    ("studies", "demo", "preset"),
)


@pytest.mark.parametrize(("app", "command", "dest"), COMMANDS)
def test_every_command_offers_every_preset(app, command, dest):
    parser = load_command_class(app, command).create_parser("manage.py", command)
    (action,) = [a for a in parser._actions if a.dest == dest]
    assert sorted(action.choices) == sorted(PRESETS) == ["cpu", "cpu-v1", "gpu", "tiny"]


def test_an_unknown_preset_is_refused_with_the_known_names():
    known = "expected one of tiny, cpu, cpu-v1, gpu"
    with pytest.raises(PresetError, match=f"unknown preset 'huge'; {known}"):
        preset("huge")
    with pytest.raises(UtilityError, match=known):
        classifier_config("huge")
    with pytest.raises(GeneratorError, match=known):
        config_for("huge", {}, None)
    with pytest.raises(ValueError, match=known):
        options_for("pcam", preset="huge")


def test_each_part_reads_its_size_from_the_preset(monkeypatch):
    tiny = PRESETS["tiny"]
    custom = dataclasses.replace(
        tiny,
        generator=tiny.generator.replace(unet_steps=3),
        classifier=tiny.classifier.replace(batch_size=4),
        reader_steps=7,
        cohort_size=6,
        reference_size=50,
        clusters=4,
        budget_minutes=2.5,
    )
    monkeypatch.setitem(PRESETS, "tiny", custom)
    assert config_for("tiny", {}, None).unet_steps == 3
    assert config_for("tiny", {"unet_steps": "5"}, None).unet_steps == 5
    assert classifier_config("tiny").batch_size == 4
    reader = reader_config("tiny")
    assert (reader.steps, reader.warmup_steps, reader.batch_size) == (7, 1, 4)
    options = options_for("pcam", preset="tiny")
    assert (options.cohort_size, options.reference_size, options.clusters) == (6, 50, 4)
    assert options.budget_minutes == 2.5 and options.classifier_preset == "tiny"
    assert options_for("pcam", preset="tiny", budget_minutes=1).budget_minutes == 1.0


def test_the_old_cpu_recipe_is_measured_by_the_cpu_classifier():
    assert PRESETS["cpu-v1"].classifier == PRESETS["cpu"].classifier
    assert PRESETS["cpu-v1"].reader_steps == PRESETS["cpu"].reader_steps
    assert PRESETS["cpu-v1"].generator.autoencoder == "kl"

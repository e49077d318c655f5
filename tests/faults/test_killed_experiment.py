"""run_experiment killed with SIGKILL inside its FID step, after the first result row is
written, then run again: the resumed run ends with every row of that step and no duplicate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from generation.models import Experiment, FidResult
from tests.faults.harness import KillPlan, command_env, record, run_command

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

EXPERIMENT = [
    *("run_experiment", "killed-exp", "--dataset", "gen-fixture", "--preset", "tiny"),
    *("--schemes", "label", "--sampling-steps", "2"),
]
FIRST_FID_ROW = 'INSERT INTO "generation_fidresult"'


def test_run_experiment_killed_after_the_first_fid_row_resumes_to_every_row(
    annotated: str, tmp_path: Path
) -> None:
    env = command_env(Path(settings.MEDIA_ROOT), Path(settings.HISTOSTUDY_GENERATORS_DIR))
    events = tmp_path / "events.txt"
    plan = KillPlan(after_match=FIRST_FID_ROW)
    killed = run_command(EXPERIMENT, env, events, plan, timeout=900)
    assert killed.killed, killed.stderr[-2000:]
    assert FIRST_FID_ROW in killed.events[-2][1]  # the row was sent, then the process died
    assert not FidResult.objects.exists()  # the step's transaction never committed
    assert "fid:label" not in Experiment.objects.get(name="killed-exp").steps

    resumed = run_command(EXPERIMENT, env, events, timeout=900).check()
    assert "[train:label] done in an earlier run; skipped" in resumed.stdout
    experiment = Experiment.objects.get(name="killed-exp")
    assert experiment.finished_at and "fid:label" in experiment.steps
    rows = FidResult.objects.filter(cohort__name="killed-exp-label", floor=False)
    # overall and per label, each once and each with its floor
    keys = Counter(rows.values_list("label", flat=True))
    assert keys == Counter({None: 1, 0: 1, 1: 1})
    assert all(r.floor_row is not None for r in rows)
    record("run_experiment (FID step)", [(plan, killed)], "every FID row once, with its floor")

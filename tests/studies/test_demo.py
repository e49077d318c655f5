"""`make demo`'s set-up (manage.py demo): a reader logs in with what it printed and reads in a
real browser; a second run reuses everything; no tiles and no internet is a clear message."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from playwright.sync_api import expect

from generation.models import Cohort, Dataset, Generator, Tile
from studies.models import Response, Study
from tests.generation.conftest import write_tile_tree

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_tiles(tmp_path_factory) -> Path:
    return write_tile_tree(tmp_path_factory.mktemp("demo") / "pcam")


def run_demo(tmp_path: Path, pcam: Path, host: str = "127.0.0.1:8000", **options) -> str:
    """The demo at test size: the tiny preset, 8 + 8 tiles, 2 practice + 6 scored per reader."""
    out = io.StringIO()
    call_command(
        "demo",
        pcam=pcam,
        host=host,
        stdout=out,
        **{
            "preset": "tiny",
            "clusters": 3,
            "cohort_size": 8,
            "cases": 6,
            "practice": 2,
            "steps": 2,
            "train_steps": "10,10",
            "train_minutes": 1.0,
            "evaluate_size": 4,
            "accounts_file": tmp_path / "demo-accounts.json",
            **options,
        },
    )
    return out.getvalue()


def printed_login(output: str, role: str = "reader") -> tuple[str, str]:
    username, password = re.search(rf"^  {role}\s+(\S+) / (\S+)$", output, re.M).groups()
    return username, password


def test_printed_reader_login_completes_the_demo_study_in_a_browser(
    page, live_server, tmp_path, demo_tiles
):
    output = run_demo(tmp_path, demo_tiles, host=live_server.url.removeprefix("http://"))
    assert Generator.objects.filter(name="demo-tiny").exists()
    cohort = Cohort.objects.get(name="demo-cohort")
    assert cohort.members.filter(kind="synthetic").count() == 8
    assert cohort.members.filter(kind="real").count() == 8
    assert Study.objects.get(name="demo").status == Study.Status.OPEN
    url = re.search(r"^Open this URL and sign in as a reader: (\S+)$", output, re.M).group(1)
    username, password = printed_login(output)

    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('My studies')")
    page.get_by_role("link", name="Start").click()
    page.locator("#begin").click()
    for n in range(1, 9):  # 2 practice tiles (each followed by feedback), then 6 scored
        expect(page.locator(".trial-progress span")).to_contain_text(f"Tile {n} of 8")
        expect(page.locator(".tile-frame img")).to_have_js_property("naturalWidth", 96)
        page.keyboard.press("s" if n % 2 else "r")
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        if n <= 2:
            page.locator("#continue").click()
    page.wait_for_selector("#completed")
    assert Response.objects.filter(reader__username=username).count() == 8

    # the staff login it printed opens the study dashboard
    staff, staff_password = printed_login(output, "staff")
    dashboard = re.search(r"^  study dashboard:\s+(\S+)$", output, re.M).group(1)
    page.context.clear_cookies()
    page.goto(dashboard)
    page.get_by_label("Username").fill(staff)
    page.get_by_label("Password").fill(staff_password)
    page.keyboard.press("Enter")
    expect(page.locator("#headline")).to_contain_text("1 reader")


def test_later_runs_reuse_everything_renew_a_changed_password_and_check_the_generator(
    tmp_path, demo_tiles, monkeypatch, capsys
):
    """One trained demo, run again three times (each run of the demo costs a training):
    unchanged, it reuses everything and prints the same logins; after a reader's password was
    changed in the admin, it renews and prints it; with a generator that has fewer steps than
    its preset needs (a time cap that bought too few, now or in an earlier run), an error
    saying what the preset needs, and no cohort or study. The first run's minutes count from
    the start make demo passes, ten minutes ago here, and training gets what they leave."""
    import dataclasses

    from django.contrib.auth import get_user_model

    from generation import presets

    started = time.time() - 600
    first = run_demo(tmp_path, demo_tiles, minutes=30, started=started, train_minutes=None)
    assert re.search(r"fidelity: FID [\d.]+ \(real-vs-real floor [\d.]+\) at 4 vs 4", first)
    spent = re.search(r"within the demo's 30 minutes \((\d+\.\d) spent\) less the steps", first)
    assert 10.0 <= float(spent.group(1)) < 20.0
    # the steps after training: 4 tiles scored, 8 in the cohort, 16 previews, in 2 steps
    kept = re.search(
        r"(\d+\.\d) of the (\d+\.\d) minutes kept for the work after training \(28 tiles "
        r"to sample in 2 steps, and (\d+\.\d) min of other work\)",
        capsys.readouterr().out,
    )
    assert float(kept.group(2)) == pytest.approx(30 - float(spent.group(1)), abs=0.3)
    assert float(kept.group(1)) >= 1.2 * float(kept.group(3)) - 0.1
    counts = (Tile.objects.count(), Generator.objects.count(), Study.objects.count())

    def refuse(*args, **kwargs):
        raise AssertionError("a second run must not import, annotate, train or generate")

    for target in (
        "studies.demo.import_tiles",
        "studies.demo.annotate_dataset",
        "studies.demo.train_generator",
        "studies.demo.generate_cohort",
        "studies.demo.evaluate_generator",
    ):
        monkeypatch.setattr(target, refuse)
    second = run_demo(tmp_path, demo_tiles)
    assert "(everything reused)" in second
    assert printed_login(second) == printed_login(first)
    assert printed_login(second, "staff") == printed_login(first, "staff")
    assert (Tile.objects.count(), Generator.objects.count(), Study.objects.count()) == counts
    assert oct((tmp_path / "demo-accounts.json").stat().st_mode & 0o777) == "0o600"

    username, old = printed_login(second)
    reader = get_user_model().objects.get(username=username)
    reader.set_password("changed-in-admin")
    reader.save()
    _, new = printed_login(run_demo(tmp_path, demo_tiles))
    assert new != old
    reader.refresh_from_db()
    assert reader.check_password(new)

    # a cohort another preset's generator made (make demo DEMO_PRESET=... before): the study
    # would show that generator's tiles, so the demo stops and says so
    other = Generator.objects.get(name="demo-tiny")
    other.pk, other.name = None, "demo-cpu"
    other.save()
    Cohort.objects.filter(name="demo-cohort").update(generator=other)
    with pytest.raises(CommandError, match="made by generator 'demo-cpu', not 'demo-tiny'"):
        run_demo(tmp_path, demo_tiles)
    mine = Generator.objects.get(name="demo-tiny")
    Cohort.objects.filter(name="demo-cohort").update(generator=mine)

    Study.objects.all().delete()
    cohorts = Cohort.objects.count()
    tiny = presets.PRESETS["tiny"]
    strict = dataclasses.replace(tiny, generator=tiny.generator.replace(min_unet_steps=500))
    monkeypatch.setitem(presets.PRESETS, "tiny", strict)
    with pytest.raises(CommandError, match=r"10 autoencoder \+ 10 denoiser steps, fewer than"):
        run_demo(tmp_path, demo_tiles)
    assert not Study.objects.exists() and Cohort.objects.count() == cohorts


def test_a_cap_too_short_for_the_minimum_steps_is_refused_at_once_saying_how_to_raise_it(
    tmp_path, demo_tiles, monkeypatch
):
    import dataclasses

    from generation import presets

    tiny = presets.PRESETS["tiny"]
    strict = dataclasses.replace(tiny, generator=tiny.generator.replace(min_unet_steps=50_000))
    monkeypatch.setitem(presets.PRESETS, "tiny", strict)
    with pytest.raises(CommandError) as caught:  # 50,000 steps in 3 s: refused at the probe
        run_demo(tmp_path, demo_tiles, train_steps="10,60000", train_minutes=0.05)
    message = str(caught.value)
    assert "0 autoencoder + 50000 denoiser" in message and "this time budget leaves" in message
    # what .ci/demo looks for (its demo-cpu in place of demo-tiny)
    assert "generator 'demo-tiny' not trained: the minimum steps" in message
    assert "make demo DEMO_MINUTES=" in message and "manage.py demo --minutes" in message
    assert "--train-minutes" in message  # the cap that bound here
    assert not Generator.objects.exists() and not Study.objects.exists()


def test_a_demo_whose_minutes_are_spent_before_training_stops_having_trained_nothing(
    tmp_path, demo_tiles
):
    with pytest.raises(CommandError) as caught:
        run_demo(tmp_path, demo_tiles, minutes=1, started=time.time() - 120, train_minutes=None)
    message = str(caught.value)
    assert re.match(r"the demo's 1 minutes were spent \(\d+\.\d\) before training began", message)
    assert "make demo DEMO_MINUTES=" in message and "manage.py demo --minutes" in message
    assert not Generator.objects.exists() and not Study.objects.exists()


def test_one_split_alone_trains_on_half_and_draws_the_cohort_from_the_rest(tmp_path, demo_tiles):
    """As with the downloaded PCam validation file: a single split, sorted by label here."""
    import shutil

    valid_only = tmp_path / "valid-only"
    shutil.copytree(demo_tiles / "valid", valid_only / "valid")
    run_demo(tmp_path, valid_only)
    generator = Generator.objects.get(name="demo-tiny")
    assert (generator.split, generator.tiles_trained) == ("valid", 20)
    trained = set(generator.training_tiles.values_list("sha256", flat=True))
    cohort = Cohort.objects.get(name="demo-cohort")
    real = cohort.members.filter(kind="real")
    assert sorted(real.values_list("label", flat=True)) == [0] * 4 + [1] * 4
    assert not trained & set(real.values_list("tile__sha256", flat=True))


def test_without_tiles_or_internet_it_says_how_to_get_pcam(tmp_path, settings):
    settings.HISTOSTUDY_PCAM_URL = "http://127.0.0.1:9/pcam/"  # nothing listens: no internet
    missing = tmp_path / "data" / "pcam"
    with pytest.raises(CommandError) as caught:
        run_demo(tmp_path, missing)
    message = str(caught.value)
    assert f"No PCam tiles at {missing}" in message
    assert f"{missing}/<split>/<label>/*.jpg" in message
    assert "make demo PCAM=/path/to/pcam" in message
    assert "camelyonpatch_level_2_split_valid_x.h5.gz" in message
    assert "The download failed" in message
    assert not Dataset.objects.exists()


def test_make_demo_without_tiles_prints_the_message_not_a_traceback(tmp_path):
    """Through manage.py as `make demo` runs it: a CommandError, no stack trace."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "HISTOSTUDY_CACHE_DIR": str(tmp_path / "cache"),
        "HISTOSTUDY_PCAM_URL": "http://127.0.0.1:9/pcam/",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=tmp_path)
    run = subprocess.run(
        [*manage, "demo", "--pcam", "data/pcam", "--accounts-file", "accounts.json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "CommandError: No PCam tiles at data/pcam" in run.stderr
    assert "make demo PCAM=/path/to/pcam" in run.stderr

"""A paired (2AFC) study in a real browser: keyboard-only reading (arrows or L/R, 1-5, Enter)
with practice feedback, the two tiles at the same size, and the dashboard's paired section.
HISTOSTUDY_SCREENSHOTS=DIR saves docs/trial-page-paired.png and docs/study-dashboard-paired.png."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from studies.models import Response, Trial
from tests.factories import UserFactory, cohort_from_fixture_tiles, open_study
from tests.studies.test_browser import sign_in, sign_in_staff
from tests.studies.test_paired_study import simulate

pytestmark = pytest.mark.django_db(transaction=True)


def test_keyboard_only_paired_reading_with_practice_feedback(page, live_server, db):
    reader = UserFactory(username="pathologist")
    open_study(cohort_from_fixture_tiles(per_stratum=5), [reader], cases=6, practice_trials=1,
               trial_design="paired")  # fmt: skip
    sign_in(page, live_server)
    page.get_by_role("link", name="Start").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#begin")
    page.keyboard.press("Enter")
    keys = ["ArrowLeft", "r", "l", "ArrowRight", "ArrowLeft", "r", "l"]
    for n, key in enumerate(keys, 1):
        expect(page.locator(".trial-progress span")).to_contain_text(f"Tile {n} of 7")
        left, right = page.locator("#tile-left"), page.locator("#tile-right")
        expect(left).to_have_js_property("naturalWidth", 96)
        expect(right).to_have_js_property("naturalWidth", 96)
        page.wait_for_load_state("load")
        assert left.evaluate("i => i.width") == right.evaluate("i => i.width") == 384
        page.keyboard.press("Enter")  # nothing chosen yet: the page says what
        expect(page.locator("#status")).to_contain_text("Choose the synthetic tile")
        if n == 2:  # on a phone the two tiles stay side by side, at one size
            size = page.viewport_size
            page.set_viewport_size({"width": 390, "height": 844})
            a, b = left.bounding_box(), right.bounding_box()
            assert a["y"] == b["y"] and a["x"] + a["width"] <= b["x"] and b["x"] + b["width"] <= 390
            assert a["width"] == b["width"] and a["height"] == b["height"] > 100
            page.set_viewport_size(size)
        if n == 4:  # the arrows on a confidence button move between levels, not sides
            page.keyboard.press("l")
            page.locator('input[name="confidence"][value="2"]').focus()
            page.keyboard.press("ArrowRight")
            assert page.locator('input[name="call"]:checked').get_attribute("value") == "left"
            assert page.locator('input[name="confidence"]:checked').get_attribute("value") == "3"
            page.locator(".trial-progress span").click()  # focus off the form again
        if n == 3 and os.environ.get("HISTOSTUDY_SCREENSHOTS"):
            page.keyboard.press(key)
            page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/trial-page-paired.png")
        for k in (key, "4", "Enter"):
            page.keyboard.press(k)
        if n == 1:  # the practice pair: feedback names the synthetic tile's side
            expect(page.locator(".feedback")).to_contain_text("The synthetic tile was on the")
            page.keyboard.press("Enter")
    page.wait_for_url("**/done/")
    answers = Response.objects.filter(reader=reader).order_by("trial__position")
    sides = {"arrowleft": "left", "l": "left", "arrowright": "right", "r": "right"}
    assert [a.call for a in answers] == [sides[k.lower()] for k in keys]
    assert all(a.confidence == 4 for a in answers)
    assert Trial.objects.filter(assignment__reader=reader, pair__isnull=True).count() == 0


def test_paired_dashboard_in_the_browser(page, live_server, db):
    staff = UserFactory(username="researcher", is_staff=True, is_superuser=True)
    readers = [UserFactory(username=f"pathologist{i}") for i in range(1, 7)]
    study = open_study(cohort_from_fixture_tiles(per_stratum=10), readers, cases=20,
                       trial_design="paired")  # fmt: skip
    simulate(study, readers, accuracy=0.55, seed=5)
    sign_in_staff(page, live_server, staff)
    page.goto(f"{live_server.url}/dashboards/studies/{study.pk}/")
    expect(page.locator("#paired-sentence")).to_contain_text("of 120 answers")
    expect(page.locator("#paired-readers tbody tr")).to_have_count(6)
    expect(page.locator(".figures svg")).to_have_count(1)
    if os.environ.get("HISTOSTUDY_SCREENSHOTS"):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/study-dashboard-paired.png",
                        full_page=True)  # fmt: skip

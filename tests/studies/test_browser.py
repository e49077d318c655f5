"""A reader in a real browser (Playwright driving Debian's chromium) against a live server.

Skipped where no chromium is installed, unless HISTOSTUDY_REQUIRE_BROWSER=1 (as in .ci/run),
which turns a missing browser into a failure. HISTOSTUDY_SCREENSHOTS=DIR saves the trial page
as a reader sees it (docs/trial-page.png comes from here).
"""

from __future__ import annotations

import os
import time

import pytest
from playwright.sync_api import expect

from studies.models import Response
from tests.factories import (
    PASSWORD,
    UserFactory,
    cohort_from_fixture_tiles,
    open_study,
    second_arm,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reader_study(db):
    reader = UserFactory(username="pathologist")
    study = open_study(cohort_from_fixture_tiles(per_stratum=5), [reader], cases=10)
    return reader, study


def sign_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/read/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").focus()
    page.keyboard.type("pathologist")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('My studies')")


def sign_in_staff(page, live_server, staff) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('My studies')")


def heading(page) -> str:
    return page.locator(".trial-progress span").inner_text()


def test_keyboard_only_reader_completes_a_study_with_a_reload(page, live_server, reader_study):
    reader, _study = reader_study
    sign_in(page, live_server)
    page.get_by_role("link", name="Start").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#begin")
    page.keyboard.press("Enter")  # Begin has the focus
    typed = []
    for n in range(1, 11):
        # expect() polls from Playwright's own world: the page's CSP forbids eval, rightly
        expect(page.locator(".trial-progress span")).to_have_text(f"Tile {n} of 10")
        image = page.locator(".tile-frame img")
        expect(image).to_have_js_property("naturalWidth", 96)  # loaded
        assert image.evaluate("i => [i.naturalWidth, i.width]") == [96, 384]
        assert image.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
        if n == 2 and os.environ.get("HISTOSTUDY_SCREENSHOTS"):
            page.keyboard.press("s")
            page.keyboard.press("4")  # a half-answered trial, as a reader sees it
            page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/trial-page.png")
        if n == 6:
            token = page.locator("#answer-form").get_attribute("data-trial")
            page.reload()
            assert heading(page) == "Tile 6 of 10"
            assert page.locator("#answer-form").get_attribute("data-trial") == token
        call, confidence = ("r", "s")[n % 2], str(1 + n % 5)
        page.keyboard.press(call)
        page.keyboard.press(confidence)
        page.keyboard.press("Enter")
        typed.append(({"r": "real", "s": "synthetic"}[call], int(confidence)))
    page.wait_for_selector("#completed")
    assert "You have answered every tile" in page.content()
    stored = list(
        Response.objects.filter(reader=reader)
        .order_by("trial__position")
        .values_list("call", "confidence", "served_at", "answered_at")
    )
    assert [(c, k) for c, k, _, _ in stored] == typed
    assert all(served <= answered for _, _, served, answered in stored)


GEOMETRY = """i => {
    const view = document.getElementById("tile-view").getBoundingClientRect();
    return {left: view.left, right: view.right, top: view.top, bottom: view.bottom,
            viewSide: view.width, shown: i.getBoundingClientRect().width,
            dpr: window.devicePixelRatio, natural: i.naturalWidth,
            pageWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
            innerHeight: window.innerHeight, scrollLeft: i.parentElement.scrollLeft,
            scale: window.visualViewport.scale};
}"""


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_the_tile_fits_the_screen_zooms_and_keyboard_reading_completes(
    request, live_server, reader_study, device
):
    """At 390 x 844 (a phone) and 1366 x 768: the whole tile on screen at whole device pixels
    per image pixel, the magnifier (keys and buttons) and pinch zoom work, and a keyboard-only
    reader completes the study."""
    reader, _study = reader_study
    page = request.getfixturevalue("phone" if device == "phone" else "page")
    if device == "desktop":
        page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server)
    page.get_by_role("link", name="Start").click()
    page.locator("#begin").click()
    tile = page.locator("#tile")
    expect(tile).to_have_js_property("naturalWidth", 96)
    expect(page.locator(".magnifier")).to_be_visible()
    meta = page.locator('meta[name="viewport"]').get_attribute("content")
    assert "user-scalable" not in meta and "maximum-scale" not in meta

    g = tile.evaluate(GEOMETRY)
    assert g["pageWidth"] <= g["innerWidth"]  # nothing cut off at the right
    assert g["left"] >= 0 and g["right"] <= g["innerWidth"] and g["bottom"] <= g["innerHeight"]
    per_pixel = g["shown"] * g["dpr"] / g["natural"]
    assert per_pixel == int(per_pixel) and g["shown"] == g["viewSide"]
    assert per_pixel == (10 if device == "phone" else 4)  # 320 CSS px at 3x; the study's 4x

    page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("2x")
    zoomed = tile.evaluate(GEOMETRY)
    assert zoomed["shown"] == 2 * g["shown"] and zoomed["viewSide"] == g["viewSide"]
    page.keyboard.press("ArrowRight")
    assert tile.evaluate(GEOMETRY)["scrollLeft"] > 0
    if os.environ.get("HISTOSTUDY_SCREENSHOTS"):
        page.keyboard.press("s")
        page.keyboard.press("4")
        name = "trial-phone.png" if device == "phone" else "trial-desktop-zoom.png"
        page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/{name}")
    page.locator("#zoom-in").click()
    expect(page.locator("#zoom-level")).to_have_text("3x")
    page.locator("#zoom-in").focus()
    page.keyboard.press("Enter")  # Enter on the magnifier's button zooms; it answers nothing
    expect(page.locator("#zoom-level")).to_have_text("4x")
    assert not Response.objects.filter(reader=reader).exists()
    page.locator('input[name="call"][value="real"]').focus()
    page.keyboard.press("ArrowDown")  # in the form, the arrows move between the answers
    expect(page.locator('input[name="call"][value="synthetic"]')).to_be_checked()
    page.locator("#zoom-out").click()
    page.locator("#zoom-out").click()
    page.keyboard.press("-")
    expect(page.locator("#zoom-level")).to_have_text("1x")
    assert tile.evaluate(GEOMETRY)["shown"] == g["shown"]
    if device == "desktop":  # a narrower window shrinks the tile; widened again, it grows back
        page.set_viewport_size({"width": 400, "height": 768})
        expect(tile).not_to_have_js_property("width", 384)
        page.set_viewport_size({"width": 1366, "height": 768})
        expect(tile).to_have_js_property("width", 384)

    if device == "phone":  # the page allows pinch zoom: a two-finger pinch enlarges it
        cdp = page.context.new_cdp_session(page)
        cdp.send("Input.synthesizePinchGesture", {"x": 195, "y": 300, "scaleFactor": 2.0})
        for _ in range(50):  # (wait_for_function would eval a string: the CSP forbids it)
            if page.evaluate("() => window.visualViewport.scale") > 1.5:
                break
            page.wait_for_timeout(100)
        assert page.evaluate("() => window.visualViewport.scale") > 1.5
        cdp.detach()

    for n in range(1, 11):
        expect(page.locator(".trial-progress span")).to_have_text(f"Tile {n} of 10")
        page.keyboard.press(("r", "s")[n % 2])
        page.keyboard.press(str(1 + n % 5))
        page.keyboard.press("Enter")
    page.wait_for_selector("#completed")
    assert Response.objects.filter(reader=reader).count() == 10


def test_time_on_screen_survives_a_reload_and_a_closed_tab(
    browser, live_server, reader_study, server_activity
):
    """The reading time recorded is the time the tile was on screen: a reload in the middle
    counts both showings; a tab closed and reopened later counts the time away as nothing."""
    reader, _study = reader_study
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, live_server)
    page.get_by_role("link", name="Start").click()
    page.locator("#begin").click()
    tile = page.locator("#tile")

    def shown(p) -> float:
        expect(p.locator("#tile")).to_have_js_property("complete", True)
        return time.monotonic()

    began = shown(page)
    page.wait_for_timeout(1200)
    page.reload()
    expect(tile).to_have_js_property("complete", True)
    page.wait_for_timeout(600)
    for key in ("r", "3", "Enter"):
        page.keyboard.press(key)
    # the truth lies between the keys sent and the next tile seen: on a loaded machine the
    # page may take a while to act on the keys (the reload's own gap is under a few 100 ms)
    reload_truth = (time.monotonic() - began,)
    expect(page.locator(".trial-progress span")).to_have_text("Tile 2 of 10")
    reload_truth += (time.monotonic() - began,)

    trial_url = page.url
    began = shown(page)
    page.wait_for_timeout(1200)
    closed = time.monotonic()
    page.close()
    time.sleep(2)  # away, the tab closed
    page = context.new_page()
    page.goto(trial_url)
    reopened = shown(page)
    page.wait_for_timeout(600)
    for key in ("s", "4", "Enter"):
        page.keyboard.press(key)
    closed_truth = ((closed - began) + (time.monotonic() - reopened),)
    expect(page.locator(".trial-progress span")).to_have_text("Tile 3 of 10")
    closed_truth += ((closed - began) + (time.monotonic() - reopened),)
    context.close()
    server_activity.settle(since=time.monotonic())

    first, second = Response.objects.filter(reader=reader).order_by("trial__position")
    assert first.trial.serve_count == 2 and second.trial.serve_count == 2
    for stored, (sent, seen) in ((first, reload_truth), (second, closed_truth)):
        on_screen = stored.on_screen_seconds
        assert sent - 0.5 < on_screen < seen + 0.5, (on_screen, sent, seen)
    since_first = (second.answered_at - second.trial.first_served_at).total_seconds()
    assert since_first > closed_truth[0] + 1.5  # what the clock alone would have said


@pytest.mark.console_errors("Failed to load resource")
def test_mouse_reader_and_a_dropped_submit_is_retried_and_stored_once(
    page, live_server, reader_study
):
    _reader, study = reader_study
    sign_in(page, live_server)
    assignment = study.assignments.get()
    page.goto(f"{live_server.url}/read/{assignment.token}/trial/")
    dropped = []

    def drop_first(route):
        if not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/responses/", drop_first)
    page.get_by_role("radio", name="S Synthetic").check()
    page.get_by_role("radio", name="5 certain").check()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".trial-progress span")).to_have_text("Tile 2 of 10")
    assert dropped  # the first attempt never reached the server; the retry did
    assert list(Response.objects.values_list("call", "confidence")) == [("synthetic", 5)]


def test_incomplete_answer_is_not_sent(page, live_server, reader_study):
    _reader, study = reader_study
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/read/{study.assignments.get().token}/trial/")
    page.keyboard.press("s")
    page.keyboard.press("Enter")  # no confidence yet
    page.wait_for_timeout(300)
    assert heading(page) == "Tile 1 of 10" and not Response.objects.exists()


def test_staff_dashboard_in_the_browser(page, live_server, db):
    from tests.studies.test_results import answer

    staff = UserFactory(username="researcher", is_staff=True, is_superuser=True)
    readers = [UserFactory(username=f"pathologist{i}") for i in range(1, 7)]
    study = open_study(cohort_from_fixture_tiles(per_stratum=10), readers, cases=24)
    for i, reader in enumerate(readers):  # readers from guessing to good
        flip = {"real": "synthetic", "synthetic": "real"}
        answer(study, reader, lambda kind, pos, i=i, flip=flip: (
            kind if (pos * 7 + i) % 10 < 4 + i else flip[kind], 1 + (pos + i) % 5,
        ))  # fmt: skip
    sign_in_staff(page, live_server, staff)
    page.goto(f"{live_server.url}/dashboards/studies/{study.pk}/")
    assert "6 readers, 144 scored answers" in page.locator("#headline").inner_text()
    assert page.locator(".figures svg").count() == 3
    if os.environ.get("HISTOSTUDY_SCREENSHOTS"):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/study-dashboard.png",
                        full_page=True)  # fmt: skip


def test_two_arm_dashboard_in_the_browser(page, live_server, db):
    from tests.studies.test_arms import read_arms

    staff = UserFactory(username="researcher", is_staff=True, is_superuser=True)
    readers = [UserFactory(username=f"pathologist{i}") for i in range(1, 7)]
    first = cohort_from_fixture_tiles("morph-arm", per_stratum=10)
    study = open_study(first, readers, cases=30, ratio_real=1, ratio_synthetic=2,
                       arms=(second_arm(first, "label-arm"),))  # fmt: skip
    read_arms(study, readers)
    sign_in_staff(page, live_server, staff)
    page.goto(f"{live_server.url}/dashboards/studies/{study.pk}/")
    expect(page.locator("#arms tbody tr")).to_have_count(2)
    expect(page.locator("#arm-differences")).to_contain_text("morph-arm - label-arm")
    expect(page.locator("#arms-sentence")).to_contain_text("6 readers")
    if os.environ.get("HISTOSTUDY_SCREENSHOTS"):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=f"{os.environ['HISTOSTUDY_SCREENSHOTS']}/study-dashboard-arms.png",
                        clip={"x": 0, "y": 0, "width": 1400, "height": 900})  # fmt: skip


def test_enter_with_nothing_chosen_says_what_is_missing(page, live_server, reader_study):
    _reader, study = reader_study
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/read/{study.assignments.get().token}/trial/")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Choose real (R) or synthetic (S).")
    page.keyboard.press("r")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Choose a confidence from 1 to 5.")
    assert not Response.objects.exists()


@pytest.mark.console_errors("Failed to load resource")
def test_an_answer_from_another_window_is_kept_and_the_page_says_so(
    page, live_server, reader_study
):
    """Tab B answered the tile; tab A, still showing it, answers otherwise: A is told that
    B's answer is kept, then moves on."""
    _reader, study = reader_study
    sign_in(page, live_server)
    assignment = study.assignments.get()
    page.goto(f"{live_server.url}/read/{assignment.token}/trial/")
    token = page.locator("#answer-form").get_attribute("data-trial")
    assignment.submit(token, "real", 2)  # the other window's answer, stored first
    page.keyboard.press("s")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text(
        "already answered in another window (real, confidence 2); that answer is kept"
    )
    expect(page.locator(".trial-progress span")).to_have_text("Tile 2 of 10", timeout=10_000)
    assert list(Response.objects.values_list("call", "confidence")) == [("real", 2)]


def test_admin_pages_log_no_content_security_policy_violation(page, live_server, db):
    """The admin pages a researcher uses log no console error: no violation of the site's
    strict CSP (the page fixture fails on one: inline styles or scripts refused) and no
    missing resource (the favicon included)."""
    from generation.models import Tile

    staff = UserFactory(username="researcher", is_staff=True, is_superuser=True)
    cohort = cohort_from_fixture_tiles(per_stratum=3)
    study = open_study(cohort, [UserFactory(username="pathologist")], cases=6)
    errors: list[str] = []
    where = {"path": ""}
    page.on("console", lambda m: errors.append(f"{where['path']}: {m.text[:60]} {m.location}")
            if m.type == "error" else None)  # fmt: skip
    page.on("response", lambda r: errors.append(f"{where['path']}: {r.status} {r.url}")
            if r.status >= 400 else None)  # fmt: skip
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#content")
    tile = Tile.objects.filter(kind="synthetic").first()
    for path in ("/admin/", "/admin/studies/study/", f"/admin/studies/study/{study.pk}/change/",
                 "/admin/studies/study/add/", f"/admin/generation/cohort/{cohort.pk}/change/",
                 f"/admin/generation/tile/{tile.pk}/change/", "/admin/studies/case/",
                 "/admin/generation/generator/", "/admin/generation/cohort/",
                 "/admin/generation/dataset/", "/admin/studies/response/"):  # fmt: skip
        where["path"] = path
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    assert not errors, errors


@pytest.mark.console_errors("Failed to load resource")
def test_a_study_closed_while_reading_says_so_in_words(page, live_server, reader_study):
    _reader, study = reader_study
    sign_in(page, live_server)
    page.get_by_role("link", name="Start").click()
    page.locator("#begin").click()
    expect(page.locator("#tile")).to_have_js_property("complete", True)
    study.close()
    for key in ("r", "3", "Enter"):
        page.keyboard.press(key)
    expect(page.locator("#status")).to_have_text(
        "The answer was not saved: This study is closed; no more answers are taken."
    )

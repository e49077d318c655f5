"""Shared fixtures: every test gets its own MEDIA_ROOT and cache, and tiles made on the fly."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

SHARED_PCAM = Path(__file__).resolve().parents[2] / "shared" / "pcam"


def pytest_configure(config) -> None:
    """Under pytest-xdist (`-n N`) each worker runs torch on one thread: N workers with the
    default thread count each would fight over the same cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def inception_features_once():
    """Each distinct tile through the FID Inception network once per test process.

    The network costs about 0.25 s a tile on one CPU thread, and the same fixture tiles (and
    the same deterministic tiny-generator tiles) are embedded in dozens of tests. Within a
    test run, a tile's features are computed by the real network the first time they are
    asked for and reused after: the same vector the network gives again, up to batch
    round-off. What tests check of the embedding (the network's output, the database cache
    of TileEmbedding rows, which is per test) is unchanged; a test may still replace
    InceptionEmbedder.embed with monkeypatch.
    """
    from generation.annotation.embeddings import InceptionEmbedder

    original = InceptionEmbedder.embed
    memo: dict[tuple[str, tuple[int, ...], bytes], np.ndarray] = {}

    def embed(self, tiles: np.ndarray) -> np.ndarray:
        tiles = np.ascontiguousarray(tiles)
        if not len(tiles):
            return original(self, tiles)
        keys = [(self.key, t.shape, hashlib.sha1(t.tobytes()).digest()) for t in tiles]
        missing = list({k: i for i, k in enumerate(keys) if k not in memo}.values())
        if missing:
            for i, vector in zip(missing, original(self, tiles[missing]), strict=True):
                memo[keys[i]] = vector
        return np.stack([memo[k] for k in keys]).astype(np.float32)

    InceptionEmbedder.embed = embed
    yield
    InceptionEmbedder.embed = original


@pytest.fixture(autouse=True, scope="session")
def precision_without_the_probe():
    """`mixed_precision=auto` without the bf16 timing probe: bf16 on a CPU with AMX, fp32 on
    any other, as before the probe. A test's precision then never hangs on a timing taken
    under the suite's own load (the tiny classifier configs use `auto`). The probe has its own
    tests (tests/generation/test_recipe.py)."""
    from generation.ldm import precision

    original = precision.cpu_bf16_speedup
    precision.cpu_bf16_speedup = lambda: 0.0
    yield
    precision.cpu_bf16_speedup = original


@pytest.fixture(autouse=True, scope="session")
def cpu_float_flags_left_alone():
    """Commands flush subnormal floats to zero for their whole process (precision.
    flush_denormals). In a test process that flag would outlive the test that ran the command
    and change the arithmetic of every later one (hypothesis refuses to run under it), so here
    it is never set; its own tests run in fresh processes (tests/generation/test_recipe.py)."""
    from generation.ldm import precision

    original = precision.flush_denormals
    precision.flush_denormals = lambda: False
    yield
    precision.flush_denormals = original


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path: Path) -> Path:
    """A fresh MEDIA_ROOT and cache per test, so tests never see each other's files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HISTOSTUDY_CACHE_DIR = tmp_path / "cache"
    settings.HISTOSTUDY_GENERATORS_DIR = tmp_path / "generators"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Users are made in many tests; PBKDF2 at full strength would dominate their time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_pcam() -> Path:
    if not (SHARED_PCAM / "train").is_dir():
        pytest.skip("../shared/pcam is not available here")
    return SHARED_PCAM


# --- a real browser (Playwright + Debian chromium) for tests/*/test_browser*.py ---


def chromium_path() -> str | None:
    return os.environ.get("HISTOSTUDY_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if not executable:
        if os.environ.get("HISTOSTUDY_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (apt-get install chromium) but was not found")
        pytest.skip("no chromium here; .ci/run installs it")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse
    # ORM calls here; the test's own ORM calls are synchronous and safe.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=executable)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class ServerActivity:
    """Requests this test process's live server is handling: its request_started and
    request_finished signals, counted in the threads that serve them. Requests made in the
    tests' own thread are left out (the test client, schemathesis's WSGI client): they may
    never send request_finished, for a streamed response that is not read to the end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.last_started = 0.0
        self.serving = threading.local()
        self.tests_thread = threading.get_ident()

    def started(self, **_kwargs) -> None:
        if threading.get_ident() == self.tests_thread:
            return
        self.serving.request = True
        with self.lock:
            self.in_flight += 1
            self.last_started = time.monotonic()

    def finished(self, **_kwargs) -> None:
        if getattr(self.serving, "request", False):
            self.serving.request = False
            with self.lock:
                self.in_flight -= 1

    def settle(self, since: float, quiet: float = 0.2, timeout: float = 5.0) -> None:
        """Wait until no request is in flight and none has started for `quiet` seconds after
        `since`: a page that closes sends its last report (navigator.sendBeacon on pagehide,
        which Playwright does not see) after its context is gone, and the live server
        handling it while the test's database is flushed deadlocks the flush on PostgreSQL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = self.in_flight <= 0
                calm = time.monotonic() - max(since, self.last_started) >= quiet
            if idle and calm:
                return
            time.sleep(0.02)
        message = f"the live server still had {self.in_flight} request(s) after {timeout} s"
        warnings.warn(message, stacklevel=2)


SERVER_ACTIVITY = ServerActivity()


@pytest.fixture(scope="session", autouse=True)
def server_activity() -> ServerActivity:
    from django.core.signals import request_finished, request_started

    SERVER_ACTIVITY.tests_thread = threading.get_ident()  # the thread that runs the tests

    request_started.connect(SERVER_ACTIVITY.started, dispatch_uid="tests-server-activity")
    request_finished.connect(SERVER_ACTIVITY.finished, dispatch_uid="tests-server-activity")
    return SERVER_ACTIVITY


def _watched_page(browser, request, **context):
    """A fresh page in its own context. Any console error it logs fails the test: a
    Content-Security-Policy violation always, anything else (a missing favicon, a failed
    request) unless the test's `console_errors` marker names it as provoked on purpose."""
    context = browser.new_context(**context)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))  # exceptions in scripts
    yield page
    context.close()
    SERVER_ACTIVITY.settle(since=time.monotonic())  # its last report lands before the flush
    violations = [e for e in errors if "Content Security Policy" in e]
    assert not violations, f"CSP violations: {violations}"
    marker = request.node.get_closest_marker("console_errors")
    expected = marker.args if marker else ()
    unexpected = [e for e in errors if not any(part in e for part in expected)]
    assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def page(browser, request):
    """A desktop browser window (1280 x 800)."""
    yield from _watched_page(browser, request, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone(browser, request):
    """A phone: 390 x 844 CSS pixels at 3 device pixels each, touch, mobile viewport rules."""
    yield from _watched_page(browser, request, viewport={"width": 390, "height": 844},
                             device_scale_factor=3, is_mobile=True, has_touch=True)  # fmt: skip

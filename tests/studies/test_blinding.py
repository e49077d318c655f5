"""A reader learns nothing but the pixels: walk every page, payload and image of a study.

Three checks over everything a reader can fetch: no identifying string (cohort, generator,
dataset, prompt, hash, source file, label word) appears anywhere; every URL carries opaque
tokens only; and the page, payload and headers of a real trial equal those of a synthetic
one once its token and position are masked. Images: same format, size, mode, headers and
no metadata chunk.

Each check runs over a study of each design: single tiles, pairs (where the side of the
synthetic tile plays the kind's part), timed at a fixed exposure, and timed with each reader's
staircase. A staircase's exposure is set from the reader's answers
to earlier trials only (test_timed_study), never from the trial's own kind, so it is masked
like the position; it does carry implicit feedback on earlier trials (docs/researcher.md).
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict

import pytest
from django.urls import reverse
from PIL import Image

from generation.models import CohortMember, Tile
from histostudy.presentation import png_chunks
from tests.factories import open_study

pytestmark = pytest.mark.django_db

TOKEN = r"[A-Za-z0-9_\-]{22}"
VARYING_HEADERS = {"Content-Length", "Expires"}  # size and clock, not content


def secrets_of(study) -> set[str]:
    """Every string that would identify kind, label, cohort, prompt, generator or file."""
    cohort = study.cohort
    found = {
        cohort.name,
        cohort.generator.name,
        cohort.real_dataset.name,
        "healthy",
        "tumour",
        "tumor",
        "morphology",
        "cohort",
        "generator",
        "prompt",
        "dpm++",
        "sha256",
        ".jpg",
    }
    for member in CohortMember.objects.filter(cohort=cohort).select_related("tile"):
        found |= {member.prompt, member.tile.sha256, member.tile.sha256[:12]}
        if member.tile.source:
            found.add(member.tile.source.rsplit("/", 1)[-1])
    for tile in Tile.objects.filter(cohort=cohort):
        found |= {str(v) for v in tile.provenance.values() if isinstance(v, str)}
    return {s.lower() for s in found if s}


def mask(text: str, trial_token: str, position: int, total: int) -> str:
    text = text.replace(trial_token, "<trial>")
    text = re.sub(rf"Tile {position + 1} of {total}", "Tile <n> of <total>", text)
    text = re.sub(r'value="\d+" aria-label="Progress"', 'value="<n>"', text)
    text = re.sub(r'"(served|answered)_at":\s*"[^"]+"', r'"\1_at":"<t>"', text)
    text = re.sub(r'"position":\s*\d+', '"position":<n>', text)
    text = re.sub(r'data-exposure="\d+"', 'data-exposure="<ms>"', text)
    text = re.sub(r'"exposure_ms":\s*\d+', '"exposure_ms":<ms>', text)
    text = re.sub(r'"answered":\s*\d+,\s*"total":\s*\d+,\s*"percent":\s*\d+', '"progress"', text)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "<csrf>", text)


class Walk:
    """Everything fetched, by kind of the trial it belonged to (None for study-level pages)."""

    def __init__(self, client):
        self.client = client
        self.texts: list[tuple[str, str]] = []  # (url, body + headers)
        self.per_kind: dict[str, list[str]] = defaultdict(list)
        self.images: dict[str, list] = defaultdict(list)

    def get(self, url: str, **kwargs):
        reply = self.client.get(url, **kwargs)
        self.record(url, reply)
        return reply

    def record(self, url: str, reply) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in sorted(reply.items()))
        body = (
            reply.content.decode() if not reply.get("Content-Type", "").startswith("image/") else ""
        )
        self.texts.append((url, headers + "\n" + body))


def walk_study(client, assignment) -> Walk:
    walk = Walk(client)
    walk.get(reverse("studies:my-studies"))
    walk.get(reverse("studies:instructions", args=[assignment.token]))
    walk.get(reverse("api:assignment-list"))
    walk.get(reverse("api:assignment-detail", args=[assignment.token]))
    total = assignment.trials.count()
    for position in range(total):
        page = walk.get(reverse("studies:trial", args=[assignment.token]))
        token = re.search(r'data-trial="([^"]+)"', page.content.decode()).group(1)
        trial = assignment.trials.select_related("case").get(token=token)
        assert trial.position == position
        api_next = walk.get(reverse("api:assignment-next", args=[assignment.token]))
        assert api_next.json()["trial"]["token"] == token
        if trial.pair_id is None:
            image = walk.get(reverse("studies:image", args=[assignment.token, token]))
            walk.images[trial.case.kind].append(image)
        else:  # a pair's two tiles, always left then right: the order tells no side
            for side in ("left", "right"):
                image = walk.get(reverse("studies:image-side", args=[assignment.token, token,
                                                                         side]))  # fmt: skip
                walk.images["synthetic" if side == trial.synthetic_side else "real"].append(image)
        if trial.exposure_ms is not None:  # what the timed page reports after the exposure
            shown = client.post(
                reverse("api:assignment-display", args=[assignment.token]),
                json.dumps({"trial": token, "serving": 1, "ms": trial.exposure_ms,
                            "frame_ms": 16.7}),
                content_type="application/json",
            )  # fmt: skip
            walk.record("POST display", shown)
        posted = client.post(
            reverse("api:assignment-responses", args=[assignment.token]),
            json.dumps({"trial": token, "call": assignment.study.calls[0], "confidence": 3}),
            content_type="application/json",
        )
        walk.record("POST responses", posted)
        progress = walk.get(reverse("api:assignment-progress", args=[assignment.token]))
        kind = trial.synthetic_side or trial.case.kind  # paired: the side that is synthetic
        for reply in (page, api_next, posted):
            body = reply.content.decode()
            headers = sorted((k, v) for k, v in reply.items() if k not in VARYING_HEADERS)
            walk.per_kind[kind].append(mask(f"{headers}\n{body}", token, position, total))
        walk.per_kind[kind].append(mask(progress.content.decode(), token, position, total))
    walk.get(reverse("studies:done", args=[assignment.token]))
    return walk


DESIGNS = {
    "single": {},
    "timed-fixed": {"trial_design": "timed", "exposure_ms": 250},
    "timed-staircase": {"trial_design": "timed"},
    "paired": {"trial_design": "paired"},
}


@pytest.fixture(params=DESIGNS)
def probed(request, cohort, alice, bob):
    return open_study(cohort, [alice, bob], name=request.param, cases=10, **DESIGNS[request.param])


@pytest.fixture
def walked(probed, alice, alice_client):
    return walk_study(alice_client, probed.assignments.get(reader=alice))


def test_no_identifying_string_anywhere(probed, walked):
    forbidden = secrets_of(probed)
    # 4 study pages + 5 per trial x 10 (6 where timed: its display report) + completion
    # (6 where paired: its two tiles)
    assert len(walked.texts) == (65 if probed.timed or probed.paired else 55)
    for url, text in walked.texts:
        lowered = text.lower()
        leaks = sorted(s for s in forbidden if s in lowered)
        assert not leaks, f"{url} reveals {leaks}"


def test_every_url_a_reader_sees_carries_opaque_tokens_only(walked):
    fixed = {
        "read",
        "trial",
        "answer",
        "image",
        "feedback",
        "done",
        "api",
        "v1",
        "assignments",
        "next",
        "progress",
        "responses",
        "screen-time",
        "display",
        "left",
        "right",
        "static",
        "css",
        "js",
        "img",
        "accounts",
        "logout",
        "admin",
    }
    for url, text in walked.texts:
        for link in re.findall(r'(?:href|src|action|data-api)="(/[^"]*)"|"(/[^"]+/)"', text):
            path = link[0] or link[1]
            for part in filter(None, path.split("/")):
                assert (
                    part in fixed
                    or re.fullmatch(TOKEN, part)
                    or part.endswith((".css", ".js", ".svg"))
                ), f"{url}: {path} has a non-opaque part {part!r}"


def test_real_and_synthetic_trials_are_indistinguishable_but_for_pixels(walked):
    # a single tile's kind, or the side of a pair's synthetic tile
    real, synthetic = (walked.per_kind[k] for k in sorted(walked.per_kind))
    assert len(real) == len(synthetic) == 20  # 5 trials x 4 replies per kind
    # Per reply type (page, next, submit, progress), the masked text is one and the same.
    assert len({*real[0::4], *synthetic[0::4]}) == 1
    assert len({*real[1::4], *synthetic[1::4]}) == 1
    assert len({*real[2::4], *synthetic[2::4]}) == 1
    assert len({*real[3::4], *synthetic[3::4]}) == 1


def test_images_match_in_format_size_mode_headers_and_carry_no_metadata(walked):
    headers, shapes = set(), set()
    for kind in ("real", "synthetic"):
        assert len(walked.images[kind]) == len(walked.images["real"]) in (5, 10)
        for reply in walked.images[kind]:
            headers.add(tuple(sorted((k, v) for k, v in reply.items() if k not in VARYING_HEADERS)))
            image = Image.open(io.BytesIO(reply.content))
            shapes.add((image.format, image.size, image.mode, tuple(sorted(image.info))))
            assert png_chunks(reply.content) == ["IHDR", "IDAT", "IEND"]
            assert "Content-Disposition" not in reply
    assert len(headers) == 1 and ("Cache-Control", "private, no-store") in next(iter(headers))
    assert shapes == {("PNG", (96, 96), "RGB", ())}


def test_every_image_is_rendered_when_the_study_opens_so_fetch_time_tells_nothing(
    cohort, alice, monkeypatch, settings
):
    """A later study reusing real tiles found them cached while its new synthetic tiles were
    rendered on first fetch: first-fetch time told the kinds apart. Now opening renders all,
    so no fetch renders anything, whatever the tile's kind or history."""
    from pathlib import Path

    from django.test import Client

    from histostudy.presentation import Presentation

    study = open_study(cohort, [alice], name="first", cases=8)
    presented = Path(settings.MEDIA_ROOT) / "presented" / study.presentation.key
    tiles = [case.tile for case in study.cases.select_related("tile")]
    assert tiles and all((presented / tile.relpath).exists() for tile in tiles)
    assert study.render_images() == 0  # nothing left to render

    def no_render(self, pixels):
        raise AssertionError("rendered at fetch time")

    monkeypatch.setattr(Presentation, "render", no_render)
    client = Client()
    client.force_login(alice)
    assignment = study.assignments.get(reader=alice)
    kinds = set()
    while (trial := assignment.next_trial()) is not None:
        url = reverse("studies:image", args=[assignment.token, trial.token])
        assert client.get(url).status_code == 200
        kinds.add(trial.case.kind)
        assignment.submit(trial.token, "real", 3)
    assert kinds == {"real", "synthetic"}

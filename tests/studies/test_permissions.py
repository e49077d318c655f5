"""Every URL pattern of the project, for anonymous, reader, other reader and staff.

A new URL without a row here fails test_every_url_pattern_has_a_row: permissions are
decided when a URL is added, not discovered later.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from generation.experiment import options_for
from generation.models import Experiment
from tests.factories import UserFactory, open_study

pytestmark = pytest.mark.django_db

LOGIN = "login"  # redirect to the reader login
ADMIN_LOGIN = "admin-login"
# staff: a superuser; helper: staff without a role on the study; owner: staff who owns it
ROLES = ("anonymous", "reader", "other", "staff", "helper", "owner")


def named_patterns(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            names |= named_patterns(entry, namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(prefix + entry.name)
    return names


@pytest.fixture
def world(cohort, alice, bob, admin_user):
    """alice reads a study with practice; bob reads it too; staff reads nothing."""
    study = open_study(cohort, [alice, bob], cases=4, practice_trials=1)
    mine = study.assignments.get(reader=alice)
    practice = mine.next_trial()
    mine.submit(practice.token, "real", 3)
    served = mine.next_trial()
    Experiment.objects.create(
        name="exp",
        dataset=study.cohort.real_dataset,
        options=options_for(study.cohort.real_dataset.name, preset="tiny").as_json(),
    )
    clients = {role: Client() for role in ROLES}
    clients["reader"].force_login(alice)
    clients["other"].force_login(bob)
    clients["staff"].force_login(admin_user)
    clients["helper"].force_login(UserFactory(username="helper", is_staff=True))
    owner = UserFactory(username="owner", is_staff=True)
    study.owners.add(owner)
    clients["owner"].force_login(owner)
    return {
        "study": study.pk,
        "a": mine.token,
        "practice": practice.token,
        "served": served.token,
        "clients": clients,
        "generator": study.cohort.generator.pk,
        "tile": served.case.tile_id,
    }


# name -> (method, args from the world, expected status per role: anonymous, reader, other, staff)
TABLE = {
    "home": ("get", [], (200, 200, 200, 200)),
    "login": ("get", [], (200, 302, 302, 302)),
    "logout": ("post", [], (302, 302, 302, 302)),
    "generation:tile-image": ("get", ["tile"], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "generation:generator-preview": (
        "get",
        ["generator", "=samples"],
        (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 404),  # fixture generator has no previews
    ),
    "generation:evaluation-plot": (
        "get",
        ["=1"],
        (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 404),  # no generator of the world was evaluated
    ),
    "generation:experiment-image": (
        "get",
        ["=exp", "=fid.png"],
        (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 404),  # not written: the experiment never ran
    ),
    "studies:my-studies": ("get", [], (LOGIN, 200, 200, 200)),
    "studies:instructions": ("get", ["a"], (LOGIN, 200, 404, 404)),
    "studies:trial": ("get", ["a"], (LOGIN, 200, 404, 404)),
    "studies:answer": ("post", ["a", "served"], (LOGIN, 302, 404, 404)),
    "studies:image": ("get", ["a", "served"], (LOGIN, 200, 404, 404)),
    # the world's study is not paired: its trials have no tile by side
    "studies:image-side": ("get", ["a", "served", "=left"], (LOGIN, 404, 404, 404)),
    "studies:feedback": ("get", ["a", "practice"], (LOGIN, 200, 404, 404)),
    "studies:done": ("get", ["a"], (LOGIN, 302, 404, 404)),
    "api:schema": ("get", [], (403, 200, 200, 200)),
    "api:assignment-list": ("get", [], (403, 200, 200, 200)),
    "api:assignment-detail": ("get", ["a"], (403, 200, 404, 404)),
    "api:assignment-next": ("get", ["a"], (403, 200, 404, 404)),
    "api:assignment-progress": ("get", ["a"], (403, 200, 404, 404)),
    "api:assignment-responses": ("post", ["a"], (403, 201, 404, 404)),
    "api:assignment-screen-time": ("post", ["a"], (403, 204, 404, 404)),
    # the world's study has no time limit: its own reader gets past permissions to the 400
    "api:assignment-display": ("post", ["a"], (403, 400, 404, 404)),
    "api:study-list": ("get", [], (403, 403, 403, 200)),
    "api:study-detail": ("get", ["study"], (403, 403, 403, 200)),
    "api:study-results": ("get", ["study"], (403, 403, 403, 200)),
    "dashboards:generation": ("get", [], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "dashboards:experiment": ("get", ["=exp"], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "dashboards:study": ("get", ["study"], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "dashboards:responses-csv": ("get", ["study"], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "dashboards:imrmc-csv": ("get", ["study"], (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)),
    "dashboards:statistics-json": (
        "get",
        ["study"],
        (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200),
    ),
}


# what staff without a role on the study (helper) get where it differs from a superuser: the
# answer key and results of a study are its owners' and editors'; the owner gets what a
# superuser gets everywhere
HELPER = {
    "api:study-detail": 403,
    "api:study-results": 403,
    "dashboards:study": 403,
    "dashboards:responses-csv": 403,
    "dashboards:imrmc-csv": 403,
    "dashboards:statistics-json": 403,
}


def expected_for(name: str) -> tuple:
    """The row's four roles, then helper and owner."""
    four = TABLE[name][2]
    return (*four, HELPER.get(name, four[3]), four[3])


def test_every_url_pattern_has_a_row():
    ours = {name for name in named_patterns() if not name.startswith("admin:")}
    assert ours == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_url_permissions(world, name):
    method, arg_names, _ = TABLE[name]
    expected = expected_for(name)
    args = [a[1:] if a.startswith("=") else world[a] for a in arg_names]
    url = reverse(name, args=args)
    body = {"call": "real", "confidence": "3"}
    if name == "api:assignment-responses":
        body = {"trial": world["served"], "call": "real", "confidence": 3}
    if name == "api:assignment-screen-time":
        body = {"trial": world["served"], "serving": 1, "ms": 1500}
    if name == "api:assignment-display":
        body = {"trial": world["served"], "serving": 1, "ms": 250, "frame_ms": 16.7}
    for role, want in zip(ROLES, expected, strict=True):
        client = world["clients"][role]
        if method == "get":
            reply = client.get(url)
        else:
            as_json = {"data": json.dumps(body), "content_type": "application/json"}
            reply = (
                client.post(url, **as_json) if name.startswith("api:") else client.post(url, body)
            )
        if want == LOGIN:
            assert reply.status_code == 302 and reply["Location"].startswith(reverse("login")), (
                f"{role} {url}"
            )
        elif want == ADMIN_LOGIN:
            assert reply.status_code == 302 and "/admin/login/" in reply["Location"], (
                f"{role} {url}"
            )
        else:
            assert reply.status_code == want, f"{role} {method} {url}: {reply.status_code}"


def admin_urls() -> list[str]:
    """Every admin URL pattern with its placeholders filled in."""
    urls = []
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLResolver) and pattern.app_name == "admin":
            urls += [u for u in _expand(pattern, "admin/")]
    return urls


def _expand(resolver: URLResolver, prefix: str) -> list[str]:
    out = []
    for entry in resolver.url_patterns:
        route = str(entry.pattern).lstrip("^").rstrip("$")
        route = re.sub(r"<path:object_id>|\(\?P<object_id>[^)]*\)", "1", route)
        route = re.sub(r"\(\?P<app_label>[^)]*\)", "studies", route)
        route = re.sub(r"<[^>]+>|\(\?P<[^>]+>[^)]*\)", "1", route)
        route = route.replace("\\", "")
        if isinstance(entry, URLResolver):
            out += _expand(entry, prefix + route)
        else:
            out.append("/" + prefix + route)
    return out


def test_readers_never_reach_any_admin_page(world):
    urls = admin_urls()
    assert len(urls) > 50
    for url in urls:
        if url.endswith("/login/") or url.endswith("/logout/"):
            continue
        for role in ("anonymous", "reader", "other"):
            reply = world["clients"][role].get(url)
            assert reply.status_code in (302, 404), f"{role} {url}: {reply.status_code}"
            if reply.status_code == 302:
                assert "/admin/login/" in reply["Location"], f"{role} {url}"
        # autocomplete without its query parameters is a 403 even for staff
        assert world["clients"]["staff"].get(url).status_code in (200, 302, 403, 404), url


def test_a_new_reader_is_not_staff(db):
    reader = UserFactory(username="newcomer")
    assert not reader.is_staff and not reader.is_superuser

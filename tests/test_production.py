"""Production settings: check --deploy is clean, and the protections it asks for really act."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from tests.factories import PASSWORD, UserFactory, cohort_from_fixture_tiles, open_study

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {  # the variables docs/operator.md lists as required
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "7f3a9c1e5b2d8f4a6c0e9b7d5f3a1c8e2b4d6f",
    "ALLOWED_HOSTS": "histostudy.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://histostudy.example.org",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_has_no_warning_with_the_documented_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_production_refuses_to_start_without_a_secret_key():
    done = manage("check", env={**PRODUCTION, "SECRET_KEY": ""})
    assert done.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in done.stderr


def test_the_operator_page_documents_every_production_variable():
    text = (ROOT / "docs" / "operator.md").read_text()
    names = ["DATABASE_URL", "MEDIA_ROOT", "STATIC_ROOT", "SECURE_PROXY_SSL_HEADER",
             "AXES_FAILURE_LIMIT", "SESSION_COOKIE_AGE"]  # fmt: skip
    for name in [*PRODUCTION, *names]:
        assert f"`{name}`" in text, name
    assert "manage.py backup" in text and "manage.py restore" in text
    assert "manage.py check --deploy" in text


@pytest.mark.django_db
def test_reader_pages_carry_a_strict_content_security_policy():
    reader = UserFactory()
    study = open_study(cohort_from_fixture_tiles(per_stratum=2), [reader], cases=2)
    client = Client()
    client.force_login(reader)
    token = study.assignments.get().token
    page = client.get(f"/read/{token}/trial/")
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    html = page.content.decode()
    # nothing inline that the policy would block: scripts come from files, no style attributes
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html and "<style" not in html
    assert page["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account_out_even_with_the_right_password(settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(username="pathologist")
    client = Client()
    for _ in range(3):
        reply = client.post("/accounts/login/", {"username": "pathologist", "password": "wrong"})
        assert reply.status_code in (200, 429)
    locked = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # another user from the same address is not locked out
    UserFactory(username="colleague")
    other = Client().post("/accounts/login/", {"username": "colleague", "password": PASSWORD})
    assert other.status_code == 302


@pytest.mark.django_db
def test_behind_a_proxy_a_lockout_holds_one_username_from_one_client_address(settings):
    """Behind one proxy every request comes from the proxy's address; five wrong passwords
    from one forwarded client must not lock the username for the others, and a client cannot
    dodge its own lockout by forging the header's left part."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_IPWARE_PROXY_COUNT = 1
    UserFactory(username="pathologist")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}

    def login(forwarded: str, password: str) -> int:
        return Client().post("/accounts/login/", {"username": "pathologist", "password": password},
                             HTTP_X_FORWARDED_FOR=forwarded, **proxy).status_code  # fmt: skip

    for _ in range(5):
        assert login("203.0.113.7", "wrong") in (200, 429)
    assert login("203.0.113.7", PASSWORD) == 429  # the attacker's address is locked
    assert login("1.2.3.4, 203.0.113.7", PASSWORD) == 429  # a forged left part changes nothing
    assert login("198.51.100.9", PASSWORD) == 302  # the pathologist elsewhere signs in


def test_the_client_address_is_the_nth_forwarded_entry_from_the_right(settings):
    from django.test import RequestFactory

    from histostudy.client_ip import client_ip

    def address(count: int, forwarded: str | None) -> str | None:
        settings.AXES_IPWARE_PROXY_COUNT = count
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return client_ip(RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", **extra))

    assert address(0, "203.0.113.7") == "10.0.0.2"  # no proxy: the header is the client's own
    assert address(1, "203.0.113.7") == "203.0.113.7"
    assert address(1, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert address(2, "6.6.6.6, 203.0.113.7, 10.0.0.3") == "203.0.113.7"
    assert address(2, "203.0.113.7") == "10.0.0.2"  # fewer entries than proxies
    assert address(1, "not-an-address") == "10.0.0.2"
    assert address(1, None) == "10.0.0.2"
    assert address(1, "2001:db8::1") == "2001:db8::1"


@pytest.mark.django_db
def test_sessions_expire_and_weak_passwords_are_refused():
    user = UserFactory()
    client = Client()
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}
                       ).status_code == 302  # fmt: skip
    assert client.session.get_expiry_age() == 8 * 3600
    assert client.session.get_expire_at_browser_close()
    for weak in ("12345678", "password", user.username + "1"):
        with pytest.raises(ValidationError):
            validate_password(weak, user)

"""Demo accounts: staff and reader users whose passwords live in a file beside the data."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model

from generation.tiles import write_atomic


def ensure_accounts(
    path: Path, readers: tuple[str, ...], staff: str
) -> tuple[dict[str, str], bool]:
    """The reader accounts and one staff account, with the passwords in `path` (JSON); a user
    missing, or whose password no longer matches the file, gets a new one. Returns the
    accounts and whether anything was made or changed."""
    users = get_user_model()
    kept = _read(path)
    accounts: dict[str, str] = {}
    changed = False
    for username in (*readers, staff):
        user = users.objects.filter(username=username).first()
        password = kept.get(username, "")
        if user is None or not password or not user.check_password(password):
            password = secrets.token_urlsafe(9)
            user = user or users(username=username)
            user.set_password(password)
            user.is_staff = user.is_superuser = username == staff
            user.save()
            changed = True
        accounts[username] = password
    made = changed or kept != accounts
    if made:
        _write(path, accounts)
    return accounts, made


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(path: Path, accounts: dict[str, str]) -> None:
    """Written whole or not at all; mode 0600, since write_atomic's temporary file comes from
    mkstemp, which creates it readable and writable by its owner only."""
    write_atomic(path, json.dumps(accounts, indent=2).encode())

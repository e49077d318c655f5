"""Sessions in the database, as Django's own store keeps them, except while it is unreachable.

Django's store reports any DatabaseError during a save as UpdateError ("the session was
deleted meanwhile"), which SessionMiddleware answers with 400 Bad Request. Sessions are saved
on every request (SESSION_SAVE_EVERY_REQUEST), after the view: an answer stored just before
PostgreSQL went away would be reported as refused, and a client must not retry a 400. An
unreachable database is the server's fault: this store lets the error through, the request
ends in a 500, and the trial page (static/js/trial.js) retries the same answer.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import InterfaceError, OperationalError


class SessionStore(DatabaseSessionStore):
    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create)
        except UpdateError as exc:
            if isinstance(exc.__context__, OperationalError | InterfaceError):
                raise exc.__context__ from None  # connection refused or dropped: a 500
            raise

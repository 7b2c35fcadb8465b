"""Who is calling the engine: a bearer token (machines, the CLI) or a session cookie (people).

The token is the engine's one shared credential. On AWS it is read from Secrets Manager
(cached, ``secret_max_age_seconds``) with the rotation rule the webhook key uses: the
current version, or the previous one during ``engine_token_grace_seconds``. Locally or in
tests it is the ``engine_token`` setting. Sessions and CSRF tokens are HMACs under a key
derived from the current token, so rotating the token also ends every session.

This module never logs or returns a credential, and it fails closed: when the token cannot
be read, ``AuthUnavailable`` is raised and the caller is refused (503), never let in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.secrets import CachedSecrets
from kyperian.domain.errors import OperationalError
from kyperian.domain.ports import PreviousSecret, SecretMatch, SecretSource, same_secret
from kyperian.settings import Settings

_T = TypeVar("_T")

SESSION_COOKIE: Final = "kyperian_session"
_SESSION_VERSION: Final = "v1"
_KEY_CONTEXT: Final = b"kyperian engine session key v1"
_UNAVAILABLE_PAUSE_SECONDS: Final = 2.0
"""After a failed read of the token, refuse without asking AWS again for this long."""


class AuthUnavailable(Exception):
    """The token cannot be read right now: refuse every request (503), let nobody in."""


class FixedSecret(SecretSource):
    """A ``SecretSource`` over one configured value (``engine_token``): no previous version."""

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self, secret_id: str) -> str:
        return self._value

    def previous(self, secret_id: str) -> PreviousSecret | None:
        return None


@dataclass(frozen=True)
class Session:
    """A verified session cookie: its id (never the cookie itself) and its CSRF token."""

    session_id: str
    csrf_token: str
    expires_at: int

    @property
    def caller(self) -> str:
        return f"session:{self.session_id[:8]}"


@dataclass(frozen=True)
class IssuedSession:
    """A new session: the cookie value to set, and what the page needs."""

    cookie: str
    session: Session
    max_age: int


class EngineAuth:
    """Checks bearer tokens, issues and verifies session cookies and their CSRF tokens."""

    def __init__(
        self,
        secrets_source: SecretSource,
        secret_id: str,
        grace_seconds: int,
        session_seconds: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = secrets_source
        self._secret_id = secret_id
        self._grace = grace_seconds
        self._session_seconds = session_seconds
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineAuth:
        """``engine_token`` when set, otherwise the Secrets Manager secret."""
        source: SecretSource
        if settings.engine_token is not None:
            source = FixedSecret(settings.engine_token.get_secret_value())
        else:
            client = make_client("secretsmanager", settings)
            source = CachedSecrets(client, settings.secret_max_age_seconds)
        return cls(
            source,
            settings.engine_token_secret_id,
            settings.engine_token_grace_seconds,
            settings.engine_session_seconds,
        )

    # --- bearer tokens ----------------------------------------------------------------------

    def check_token(self, provided: str | None) -> SecretMatch | None:
        """Which token version ``provided`` is, or ``None`` (missing or wrong: not said which).

        Raises ``AuthUnavailable`` when the token cannot be read.
        """
        if not provided:
            return None
        return self._guarded(
            lambda: self._secrets.match(self._secret_id, provided, self._grace, self._clock())
        )

    # --- sessions ---------------------------------------------------------------------------

    def issue_session(self) -> IssuedSession:
        """A new signed session that expires ``engine_session_seconds`` from now."""
        key = self._session_key()
        session_id = secrets.token_urlsafe(18)
        expires = int(self._clock().timestamp()) + self._session_seconds
        payload = f"{_SESSION_VERSION}.{session_id}.{expires}"
        cookie = f"{payload}.{_sign(key, payload)}"
        session = Session(session_id, _sign(key, f"csrf.{session_id}"), expires)
        return IssuedSession(cookie, session, self._session_seconds)

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or ``None`` if it is forged, malformed or expired."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != _SESSION_VERSION or not parts[2].isdigit():
            return None
        key = self._session_key()
        _, session_id, expires, signature = parts
        if not same_secret(signature, _sign(key, ".".join(parts[:3]))):
            return None
        if int(expires) <= self._clock().timestamp():
            return None
        return Session(session_id, _sign(key, f"csrf.{session_id}"), int(expires))

    def _session_key(self) -> bytes:
        token = self._guarded(lambda: self._secrets.get(self._secret_id))
        return hmac.new(token.encode("utf-8", "surrogatepass"), _KEY_CONTEXT, "sha256").digest()

    # --- failing closed -----------------------------------------------------------------------

    def _guarded(self, read: Callable[[], _T]) -> _T:
        """Run a secret read; after a failure, refuse for a short pause without retrying AWS."""
        if time.monotonic() < self._down_until:
            raise AuthUnavailable
        try:
            return read()
        except OperationalError as exc:
            with self._lock:
                self._down_until = time.monotonic() + _UNAVAILABLE_PAUSE_SECONDS
            raise AuthUnavailable from exc


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")

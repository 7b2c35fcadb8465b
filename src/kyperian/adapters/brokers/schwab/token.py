"""The Schwab OAuth token, shared by every engine task through Secrets Manager.

Schwab's access token lives 30 minutes and its refresh token 7 days; after that a person must
log in again in a browser (``kyperian broker login schwab``). The token is kept in one secret,
in schwab-py's own format (``{"creation_timestamp": ..., "token": {...}}``), read and written
through schwab-py's access-function hooks, so every task uses the same token.

One refresher: a task refreshes only when the access token is within the configured margin of
expiry *after* re-reading the secret (another task may already have refreshed it), and writes
the new token with a ``ClientRequestToken`` derived from the token it replaced. Secrets
Manager accepts one value per request token, so when two tasks race, the second write fails
with ``ResourceExistsException`` and that task adopts the winner's token: one token per
generation, and no task overwrites another's newer token. Like schwab-py, this relies on a
refresh leaving earlier access tokens valid until they expire, so a lost race costs one
extra call to Schwab, never a lockout.

Token values are never logged.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.domain.errors import OperationalError, TemporaryError

REFRESH_TOKEN_LIFETIME_SECONDS: Final = 7 * 86400
"""Schwab's documented refresh-token lifetime; the login's ``creation_timestamp`` starts it."""
LOGIN_HINT: Final = "a person must log in again: `kyperian broker login schwab` (docs/brokers.md)"
_NAMESPACE: Final = uuid.UUID("6f1c1f4e-1d8e-4d43-9d44-5c0d2f4b7a10")


@dataclass(frozen=True)
class StoredToken:
    """schwab-py's wrapped token: the OAuth token and when the login that made it happened."""

    creation_timestamp: int
    token: dict[str, Any]

    @property
    def access_expires_at(self) -> float:
        return float(self.token.get("expires_at") or 0)

    def refresh_expires_at(self) -> float:
        return self.creation_timestamp + REFRESH_TOKEN_LIFETIME_SECONDS

    def days_left(self, now: float) -> float:
        """Days until the refresh token expires and a person must log in again."""
        return (self.refresh_expires_at() - now) / 86400

    def wrapped(self) -> dict[str, Any]:
        return {"creation_timestamp": self.creation_timestamp, "token": self.token}

    @classmethod
    def parse(cls, text: str, secret_id: str) -> StoredToken:
        try:
            data = json.loads(text)
            return cls(int(data["creation_timestamp"]), dict(data["token"]))
        except (ValueError, KeyError, TypeError):
            raise OperationalError(
                f"secret {secret_id} holds no Schwab token in schwab-py's format: {LOGIN_HINT}"
            ) from None


class SchwabTokenStore:
    """The token secret: cached reads, compare-and-set writes (see the module docstring)."""

    def __init__(
        self,
        secret_id: str,
        client: Any,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cached: tuple[float, StoredToken] | None = None
        self._lock = threading.Lock()

    def read(self, fresh: bool = False) -> StoredToken:
        """The stored token; re-read from Secrets Manager when ``fresh`` or the cache is old."""
        with self._lock:
            now = self._clock()
            if not fresh and self._cached and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            token = StoredToken.parse(self._get(), self.secret_id)
            self._cached = (now, token)
            return token

    def _get(self) -> str:
        try:
            answer = self._client.get_secret_value(SecretId=self.secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise OperationalError(
                    f"no Schwab token in {self.secret_id}: {LOGIN_HINT}"
                ) from None
            raise TemporaryError(f"Schwab token secret unreadable ({code})") from exc
        except BotoCoreError as exc:
            raise TemporaryError(f"Schwab token secret unreachable: {exc}") from exc
        return str(answer.get("SecretString") or "")

    def write(self, token: StoredToken, replacing: StoredToken | None = None) -> StoredToken:
        """Store ``token``; the token actually current afterwards (a racing task's, if it won).

        ``replacing`` is the token this one was refreshed from: its identity becomes the
        write's ``ClientRequestToken``, so only one refresh of a given token is ever stored.
        """
        text = json.dumps(token.wrapped())
        request: dict[str, Any] = {"SecretId": self.secret_id, "SecretString": text}
        if replacing is not None:
            generation = f"{replacing.creation_timestamp}:{replacing.access_expires_at}"
            request["ClientRequestToken"] = str(uuid.uuid5(_NAMESPACE, generation))
        try:
            self._client.put_secret_value(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceExistsException":
                return self.read(fresh=True)  # another task refreshed the same token first
            raise TemporaryError("Schwab token could not be stored") from exc
        except BotoCoreError as exc:
            raise TemporaryError(f"Schwab token could not be stored: {exc}") from exc
        with self._lock:
            self._cached = (self._clock(), token)
        return token

"""What every notification channel shares: its filter, its credentials, one HTTP POST.

A channel turns a ``Notice`` into one request to its service. It raises
``TemporaryError`` when trying again may work (network, timeouts, HTTP 429 and 5xx) and
``OperationalError`` when it will not (HTTP 4xx: a revoked token, a deleted webhook, an
unreadable secret); the dispatcher retries the first and dead-letters both in the end.
Credentials are read from Secrets Manager at send time through a cached reader, so a
rotated token is used within the cache's lifetime and is never held in settings or logs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from kyperian.domain.errors import OperationalError, TemporaryError
from kyperian.domain.notices import DEFAULT_KINDS, Notice, NoticeKind
from kyperian.domain.ports import SecretSource

HTTP_TIMEOUT_SECONDS: Final = 5.0
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})


@dataclass(frozen=True)
class ChannelFilter:
    """Which notices a channel wants: by kind, and by symbol (empty = every symbol)."""

    kinds: frozenset[NoticeKind] = DEFAULT_KINDS
    symbols: frozenset[str] = field(default_factory=frozenset)

    def accepts(self, notice: Notice) -> bool:
        if notice.kind not in self.kinds:
            return False
        return not self.symbols or notice.symbol is None or notice.symbol in self.symbols


class Channel(ABC):
    """One destination. Subclasses set ``name`` and implement ``send``."""

    name: ClassVar[str]

    def __init__(self, notice_filter: ChannelFilter) -> None:
        self.filter = notice_filter

    def accepts(self, notice: Notice) -> bool:
        return self.filter.accepts(notice)

    @abstractmethod
    def send(self, notice: Notice) -> None:
        """Deliver one notice, or raise ``TemporaryError``/``OperationalError``."""


def secret_fields(
    secrets: SecretSource, secret_id: str, required: tuple[str, ...]
) -> dict[str, str]:
    """The JSON secret's fields; ``OperationalError`` naming the missing field, never a value."""
    raw = secrets.get(secret_id)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OperationalError(f"secret {secret_id} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise OperationalError(f"secret {secret_id} is not a JSON object")
    missing = [name for name in required if not isinstance(value.get(name), str | int)]
    if missing:
        raise OperationalError(f"secret {secret_id} lacks field(s) {', '.join(missing)}")
    return {name: str(value[name]) for name in required}


def post_json(url: str, payload: Mapping[str, Any], what: str) -> bytes:
    """POST ``payload`` as JSON; the body of a 2xx answer, else a classified error.

    ``what`` names the destination in errors (never the URL: webhook URLs are secrets).
    """
    if not url.startswith(("https://", "http://")):
        raise OperationalError(f"{what}: the URL is not http(s)")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "kyperian-notifier"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:  # noqa: S310  # nosec B310 - http(s) only, checked above
            body: bytes = answer.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in _RETRYABLE_STATUS:
            raise TemporaryError(f"{what} answered HTTP {exc.code}") from exc
        raise OperationalError(f"{what} refused the message: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TemporaryError(f"{what} unreachable ({type(exc).__name__})") from exc

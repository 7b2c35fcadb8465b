"""A small HTTP client for the webhook gateway and the engine API, used by the CLI.

Standard library only (urllib), so the command stays light. Every call returns the HTTP
status and the decoded JSON body; connection failures become ``Unreachable`` with a
sentence saying what to check, never a traceback.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_FILE = Path(".kyperian/api-key")
"""Where ``kyperian up`` leaves the generated local API key (mode 0600) for the CLI."""


class Unreachable(Exception):
    """Nothing answered at the URL."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body (``{}`` when empty or not JSON)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(
    method: str, url: str, payload: dict[str, Any] | None = None, timeout: float = 10.0
) -> Answer:
    """Send one request; JSON in, JSON out."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return Answer(int(response.status), _decode(response.read()))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _decode(exc.read()))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{url}: {reason} (is the stack running? try `kyperian up`)") from None


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")[:500]}
    return value if isinstance(value, dict) else {"value": value}


def api_key(explicit: str | None) -> str | None:
    """The key to send: ``--key``, else ``KYPERIAN_API_KEY``, else the local stack's key file."""
    if explicit:
        return explicit
    if os.environ.get("KYPERIAN_API_KEY"):
        return os.environ["KYPERIAN_API_KEY"]
    try:
        return KEY_FILE.read_text().strip() or None
    except OSError:
        return None


def remember_key(key: str) -> None:
    """Leave the local key where ``kyperian send``/``replay`` find it (owner-only file)."""
    KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    KEY_FILE.touch(mode=0o600, exist_ok=True)
    KEY_FILE.chmod(0o600)
    KEY_FILE.write_text(key + "\n")


def symbol_path(symbol: str) -> str:
    """A symbol as a URL path segment (``BRK.B``, ``ES1!`` kept intact)."""
    return urllib.parse.quote(symbol.upper(), safe="")

"""A small HTTP client for the webhook gateway and the engine API, used by the CLI.

Standard library only (urllib), so the command stays light. Every call returns the HTTP
status and the decoded JSON body; connection failures become ``Unreachable`` with a
sentence saying what to check, never a traceback. Engine calls carry the engine's bearer
token (``KYPERIAN_ENGINE_TOKEN``, else the file ``kyperian up`` leaves); the local stack's
files live in ``KYPERIAN_LOCAL_STATE_DIR`` (default ``.kyperian``), readable by the owner only.
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

STATE_DIR_VARIABLE = "KYPERIAN_LOCAL_STATE_DIR"
KEY_FILE_NAME = "api-key"
"""The local webhook key, as ``kyperian up`` leaves it (mode 0600) for the CLI."""
TOKEN_FILE_NAME = "engine-token"  # noqa: S105 - a file name, not a secret
"""The local engine token, as ``kyperian up`` leaves it (mode 0600) for the CLI."""


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
    method: str,
    url: str,
    payload: dict[str, Any] | None = None,
    timeout: float = 10.0,
    bearer: str | None = None,
) -> Answer:
    """Send one request; JSON in, JSON out; ``bearer`` as ``Authorization: Bearer``."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
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


def engine_request(
    method: str, url: str, payload: dict[str, Any] | None = None, timeout: float = 10.0
) -> Answer:
    """``request`` to the engine API, with the engine token when one is known."""
    return request(method, url, payload, timeout, bearer=engine_token())


def state_dir() -> Path:
    """Where the local stack keeps its key and token files."""
    return Path(os.environ.get(STATE_DIR_VARIABLE) or ".kyperian")


def api_key(explicit: str | None) -> str | None:
    """The key to send: ``--key``, else ``KYPERIAN_API_KEY``, else the local stack's key file."""
    return explicit or os.environ.get("KYPERIAN_API_KEY") or _read(KEY_FILE_NAME)


def engine_token() -> str | None:
    """The engine token: ``KYPERIAN_ENGINE_TOKEN``, else the local stack's token file."""
    return os.environ.get("KYPERIAN_ENGINE_TOKEN") or _read(TOKEN_FILE_NAME)


def remember_key(key: str) -> Path:
    """Leave the local webhook key where ``kyperian send``/``replay`` find it."""
    return _remember(KEY_FILE_NAME, key)


def remember_token(token: str) -> Path:
    """Leave the local engine token where ``kyperian signals``/``decisions`` find it."""
    return _remember(TOKEN_FILE_NAME, token)


def _read(name: str) -> str | None:
    try:
        return (state_dir() / name).read_text().strip() or None
    except OSError:
        return None


def _remember(name: str, value: str) -> Path:
    """Write an owner-only file (0600, created so before the value is written)."""
    path = state_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(value + "\n")
    return path


def symbol_path(symbol: str) -> str:
    """A symbol as a URL path segment (``BRK.B``, ``ES1!`` kept intact)."""
    return urllib.parse.quote(symbol.upper(), safe="")

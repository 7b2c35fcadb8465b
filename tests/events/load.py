"""Load recorded events and derive variations of them for a route, body and headers."""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


@cache
def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_HERE / name).read_text())
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded event (``tests/events/<name>``)."""
    return copy.deepcopy(_recorded(name))


def http_event(
    method: str = "POST",
    path: str = "/webhook",
    body: str | bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
    base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP API v2 event as API Gateway sends it for ``method path`` with ``body``."""
    event = load_event("http_api_v2_webhook.json")
    if isinstance(body, dict):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    # A named stage prefixes the path, as API Gateway sends it: /production/webhook
    stage = event["requestContext"]["stage"]
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/{stage}{path}"
    event["requestContext"]["http"]["method"] = method
    event["headers"].pop("content-type", None)
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    if raw is None:
        event.pop("body", None)
        event["headers"]["content-length"] = "0"
    elif base64_body or not _is_text(raw):
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
        event["headers"]["content-length"] = str(len(raw))
    else:
        event["body"] = raw.decode()
        event["isBase64Encoded"] = False
        event["headers"]["content-length"] = str(len(raw))
    return event


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

"""The broker-credentials secret: one JSON object with a section per live venue.

The secret (``/kyperian/<env>/broker/credentials``) is injected into the engine task as
``KYPERIAN_BROKER_CREDENTIALS``. Its shape is documented in docs/brokers.md::

    {"alpaca": {"api_key_id": "...", "api_secret_key": "...", "paper": true},
     "schwab": {"app_key": "...", "app_secret": "...", "callback_url": "https://127.0.0.1:8182"},
     "ibkr":   {"account": "DU1234567"}}

A venue whose section is missing is simply not configured (its routes answer 503 saying so);
a secret that is not a JSON object is an ``OperationalError``. Values are never logged.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from kyperian.domain.errors import OperationalError

SETTING = "KYPERIAN_BROKER_CREDENTIALS"


def venue_section(secret: SecretStr | None, venue: str) -> dict[str, Any] | None:
    """The venue's section of the secret, or None when the venue is not in it."""
    if secret is None or not secret.get_secret_value().strip():
        return None
    try:
        document = json.loads(secret.get_secret_value())
    except ValueError:
        raise OperationalError(f"{SETTING} is not JSON: see docs/brokers.md") from None
    if not isinstance(document, dict):
        raise OperationalError(f"{SETTING} must be a JSON object keyed by venue")
    section = document.get(venue)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise OperationalError(f"{SETTING}: the {venue!r} section must be a JSON object")
    return section

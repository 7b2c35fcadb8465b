"""The ingestion resources in moto, made by the same code the local stack uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kyperian.local.resources import provision

API_KEY = "test-api-key-0123456789abcdefghijklmnop"


@dataclass(frozen=True)
class IngestResources:
    """Names and handles the ingestion tests inspect."""

    table: str
    bus: str
    queue_url: str
    secret_id: str


def create_ingest_resources(clients: dict[str, Any], environment: str = "test") -> IngestResources:
    """Signals table, bus, rule -> queue (+ DLQ, audit log), and the API key secret."""
    made = provision(clients, environment, API_KEY)
    return IngestResources(made.signals_table, made.bus, made.queue_url, made.api_key_secret_id)

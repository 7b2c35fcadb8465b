"""Where the deployment under test is, from the environment the deploy workflow sets.

- ``KYPERIAN_DEPLOYED_URL``: the webhook base URL with the stage, e.g.
  https://api.staging.kyperian.com/staging
- ``KYPERIAN_DEPLOYED_ENGINE_URL``: the engine, e.g. https://engine.staging.kyperian.com
- ``KYPERIAN_API_KEY``: the environment's webhook key; without it only read-only checks run
- ``KYPERIAN_ENGINE_TOKEN``: the engine's bearer token (``/kyperian/<env>/engine/token``),
  for the checks that read decisions

Without ``KYPERIAN_DEPLOYED_URL`` every test here is skipped: ``make test`` never reaches out.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Deployment:
    webhook: str
    engine: str | None
    api_key: str | None
    run_id: str

    def symbol(self, prefix: str) -> str:
        """A symbol no other run uses, so duplicates and decisions are this run's own."""
        return f"{prefix}{self.run_id}"


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    webhook = os.environ.get("KYPERIAN_DEPLOYED_URL", "").rstrip("/")
    if not webhook:
        pytest.skip("no deployment to test: set KYPERIAN_DEPLOYED_URL")
    engine = os.environ.get("KYPERIAN_DEPLOYED_ENGINE_URL", "").rstrip("/") or None
    run = os.environ.get("GITHUB_RUN_ID") or uuid.uuid4().hex[:8]
    key = os.environ.get("KYPERIAN_API_KEY") or None
    return Deployment(webhook, engine, key, run[-8:].upper())  # symbols are upper case


@pytest.fixture(scope="session")
def api_key(deployment: Deployment) -> str:
    if not deployment.api_key:
        pytest.skip("no KYPERIAN_API_KEY: alerts are not sent to this deployment")
    return deployment.api_key

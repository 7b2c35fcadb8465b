"""``make loadtest HOST=...`` refuses to start without the credentials the deployment wants."""

from __future__ import annotations

from pathlib import Path

import pytest

from kyperian.client import STATE_DIR_VARIABLE
from tests.load.run import missing_credentials

DEPLOYED = "https://api.example.test"
ENGINE = "https://engine.example.test"


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KYPERIAN_API_KEY", raising=False)
    monkeypatch.delenv("KYPERIAN_ENGINE_TOKEN", raising=False)
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(tmp_path))  # no local key or token file


def test_a_deployed_run_without_key_or_token_names_both() -> None:
    # GIVEN neither the webhook key nor the engine token in the environment
    # WHEN a run against a deployment, decisions included, is checked
    missing = missing_credentials(DEPLOYED, ENGINE)
    # THEN both are named: every alert would be refused, no decision readable
    assert [m.split()[0] for m in missing] == ["KYPERIAN_API_KEY", "KYPERIAN_ENGINE_TOKEN"]


def test_a_deployed_run_with_both_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the key and the token, as the deploy workflow exports them
    monkeypatch.setenv("KYPERIAN_API_KEY", "key")
    monkeypatch.setenv("KYPERIAN_ENGINE_TOKEN", "token")
    # WHEN checked THEN nothing is missing
    assert missing_credentials(DEPLOYED, ENGINE) == []


def test_the_token_is_needed_only_to_read_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the key only
    monkeypatch.setenv("KYPERIAN_API_KEY", "key")
    # WHEN a run sends alerts without ENGINE_URL, or with it
    # THEN only the second needs the engine token
    assert missing_credentials(DEPLOYED, None) == []
    assert len(missing_credentials(DEPLOYED, ENGINE)) == 1


def test_a_local_run_needs_nothing() -> None:
    # GIVEN no HOST: the run starts its own stack with a fresh key and token
    # WHEN checked THEN nothing is missing
    assert missing_credentials(None, None) == []

"""``kyperian broker status`` lines and the ``kyperian broker login schwab`` flow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import respx
from moto import mock_aws
from pydantic import SecretStr

from kyperian import broker_commands, cli
from kyperian.adapters.brokers.schwab.token import StoredToken
from kyperian.client import Answer
from kyperian.settings import Settings

NOW = 1_800_000_000.0


def test_status_lines_say_mode_connection_role_and_account() -> None:
    connected = Answer(
        200,
        {
            "venue": "alpaca",
            "served_by": "alpaca",
            "paper": True,
            "connected": True,
            "executing": True,
            "live_orders": True,
            "account": {"equity": "1000", "buying_power": "4000"},
        },
    )
    line = broker_commands.status_line("alpaca", connected)
    assert line.split() == [
        "alpaca", "paper", "connected", "EXECUTING", "decisions",
        "equity=1000", "buying_power=4000",
    ]  # fmt: skip
    schwab = Answer(
        200,
        {
            "served_by": "schwab",
            "paper": False,
            "connected": False,
            "problem": "no Schwab token",
            "live_orders": False,
            "refresh_token_days_left": 1.5,
        },
    )
    line = broker_commands.status_line("tda", schwab)
    assert "LIVE  NOT connected (no Schwab token)  served by schwab" in line
    assert line.endswith("login expires in 1.5 days  orders off")
    missing = Answer(503, {"detail": "ibkr is not configured: set KYPERIAN_IBKR_HOST"})
    assert broker_commands.status_line("ibkr", missing) == (
        "ibkr    503: ibkr is not configured: set KYPERIAN_IBKR_HOST"
    )


def test_status_of_one_venue_fails_when_it_is_not_usable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the engine answers 503 for IB
    asked: list[str] = []

    def engine(method: str, url: str, *args: Any, **kwargs: Any) -> Answer:
        asked.append(url)
        return Answer(503, {"detail": "ibkr is not configured: set KYPERIAN_IBKR_HOST"})

    monkeypatch.setattr(broker_commands, "engine_request", engine)
    # WHEN asked for IB alone THEN exit 1 and the setting is printed
    assert cli.main(["broker", "status", "ibkr", "--engine", "http://e:1"]) == 1
    assert asked == ["http://e:1/broker/ibkr/status"]
    assert "KYPERIAN_IBKR_HOST" in capsys.readouterr().out
    # AND asking for all venues lists all three and succeeds
    asked.clear()
    assert cli.main(["broker", "status", "--engine", "http://e:1"]) == 0
    assert [u.rsplit("/", 2)[1] for u in asked] == ["alpaca", "ibkr", "tda"]


def test_login_stores_the_token_for_every_task() -> None:
    # GIVEN the Schwab app in the broker-credentials secret, and Schwab's token endpoint
    credentials = {
        "schwab": {
            "app_key": "app-key",
            "app_secret": "app-secret",
            "callback_url": "https://127.0.0.1:8182",
        }
    }
    issued = {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "token_type": "Bearer",
        "expires_in": 1800,
        "scope": "api",
        "id_token": "id",
    }
    settings = Settings(environment="test")
    said: list[str] = []
    with mock_aws(), respx.mock(assert_all_called=True) as schwab:
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secrets.create_secret(
            Name="/kyperian/test/broker/credentials", SecretString=json.dumps(credentials)
        )
        # (the config stack creates the token secret with a placeholder)
        secrets.create_secret(
            Name="/kyperian/test/broker/schwab-token", SecretString='{"login": "required"}'
        )
        exchange = schwab.post("https://api.schwabapi.com/v1/oauth/token").respond(json=issued)

        def browser(prompt: str) -> str:
            # The person logs in; Schwab redirects to the callback with a code and the state.
            state = parse_qs(urlparse(said[-1]).query)["state"][0]
            return f"https://127.0.0.1:8182/?code=C0DE%40&session=s&state={state}"

        # WHEN the operator runs the login
        expires = broker_commands.login_schwab(
            settings, ask=browser, say=said.append, secrets=secrets, clock=lambda: NOW
        )
        stored = StoredToken.parse(
            secrets.get_secret_value(SecretId="/kyperian/test/broker/schwab-token")["SecretString"],
            "x",
        )
    # THEN the code was exchanged once and the token is in the environment's token secret
    assert exchange.call_count == 1
    assert "code=C0DE%40" in exchange.calls.last.request.content.decode()
    assert stored.token["access_token"] == "access-1"
    assert said[-2].startswith("https://api.schwabapi.com/v1/oauth/authorize?")
    # AND the expiry is seven days after the login
    created = datetime.fromtimestamp(stored.creation_timestamp, UTC)
    assert (expires - created).days == 7


def test_login_refuses_a_url_that_is_not_the_callback() -> None:
    credentials = json.dumps({"schwab": {"app_key": "k", "app_secret": "s"}})
    settings = Settings(environment="test", broker_credentials=SecretStr(credentials))
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        with pytest.raises(ValueError, match="callback"):
            broker_commands.login_schwab(
                settings, ask=lambda _: "https://evil.example/?code=x", say=lambda _: None,
                secrets=secrets,
            )  # fmt: skip

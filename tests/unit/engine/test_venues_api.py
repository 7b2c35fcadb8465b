"""``/broker/{alpaca|ibkr|tda}/...``: live venues through the engine API.

Alpaca answers from recorded exchanges (``responses``); the other venues are unconfigured
or failing. Requests carry the engine token as the authentication contract asks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import cast

import pytest
import responses
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kyperian.adapters.brokers.venues import Venues
from kyperian.domain.brokers import Broker
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.settings import Settings
from tests.events.load import load_event
from tests.unit.engine.conftest import Engine

TOKEN = "test-engine-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAPER = "https://paper-api.alpaca.markets/v2"
ALPACA_ONLY = json.dumps({"alpaca": {"api_key_id": "PKTEST", "api_secret_key": "s"}})


def _client(engine: Engine, settings: Settings) -> TestClient:
    services = EngineServices(
        settings=settings,
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=None,
        venues=Venues(settings),
    )
    return TestClient(create_app(services))


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        engine_token=TOKEN,  # the auth contract's setting (issue 17)
        broker_credentials=SecretStr(ALPACA_ONLY),
        broker_venue="alpaca",
    )
    with _client(engine, settings) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("venue", "setting"),
    [("ibkr", "KYPERIAN_IBKR_HOST"), ("tda", "'schwab' section")],
)
@pytest.mark.parametrize("route", ["status", "account", "positions", "orders"])
def test_an_unconfigured_venue_answers_503_naming_the_setting(
    client: TestClient, venue: str, setting: str, route: str
) -> None:
    # GIVEN only Alpaca is configured WHEN another venue is asked
    response = client.get(f"/broker/{venue}/{route}", headers=AUTH)
    # THEN 503 says which setting to set
    assert response.status_code == 503
    assert setting in response.json()["detail"]


def test_an_unknown_venue_is_a_422_naming_the_choices(client: TestClient) -> None:
    response = client.get("/broker/robinhood/status", headers=AUTH)
    assert response.status_code == 422
    assert "alpaca" in json.dumps(response.json())


@responses.activate
def test_status_shows_a_connected_paper_venue_with_its_account(client: TestClient) -> None:
    # GIVEN Alpaca paper answers
    responses.get(f"{PAPER}/account", json=load_event("brokers/alpaca_account.json"))
    # WHEN the status is read
    body = client.get("/broker/alpaca/status", headers=AUTH).json()
    # THEN it is configured, connected, paper, executing, with the account summary
    assert body["configured"] is True
    assert body["connected"] is True
    assert body["paper"] is True
    assert body["executing"] is True
    assert body["problem"] is None
    assert Decimal(body["account"]["equity"]) == Decimal("103820.56")


@responses.activate
def test_positions_and_open_orders_come_from_the_venue(client: TestClient) -> None:
    responses.get(f"{PAPER}/positions", json=load_event("brokers/alpaca_positions.json"))
    responses.get(f"{PAPER}/orders", json=[load_event("brokers/alpaca_order_accepted.json")])
    positions = client.get("/broker/alpaca/positions", headers=AUTH).json()
    orders = client.get("/broker/alpaca/orders", headers=AUTH).json()
    assert [p["symbol"] for p in positions] == ["AAPL", "BTCUSD", "BRK.B"]
    assert [o["client_order_id"] for o in orders] == ["dec-0001"]
    assert orders[0]["status"] == "ACCEPTED"


@responses.activate
def test_revoked_keys_show_in_status_and_make_reads_503(client: TestClient) -> None:
    # GIVEN Alpaca rejects the keys
    responses.get(
        f"{PAPER}/account", json={"code": 40110000, "message": "unauthorized"}, status=401
    )
    # WHEN the status is read THEN it is not connected and says why
    body = client.get("/broker/alpaca/status", headers=AUTH).json()
    assert body["connected"] is False
    assert "KYPERIAN_BROKER_CREDENTIALS" in body["problem"]
    # AND a read answers 503 with the reason, not a 500
    response = client.get("/broker/alpaca/account", headers=AUTH)
    assert response.status_code == 503
    assert "refused the keys" in response.json()["detail"]


@responses.activate
def test_a_rate_limited_venue_answers_503_with_retry_after(client: TestClient) -> None:
    responses.get(
        f"{PAPER}/positions",
        json={"code": 42910000, "message": "rate limit exceeded"},
        status=429,
        headers={"X-RateLimit-Reset": "9999999999"},
    )
    response = client.get("/broker/alpaca/positions", headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"


def test_tda_is_served_by_schwab_and_says_there_is_no_paper(engine: Engine) -> None:
    # GIVEN Schwab is configured but its token secret cannot be reached
    credentials = {"schwab": {"app_key": "k", "app_secret": "s"}}
    settings = Settings(
        environment="test",
        engine_token=TOKEN,
        broker_credentials=SecretStr(json.dumps(credentials)),
        aws_endpoint_url="http://127.0.0.1:9",
        aws_max_attempts=1,
        aws_connect_timeout=0.2,
    )
    with _client(engine, settings) as client:
        body = client.get("/broker/tda/status", headers=AUTH).json()
    # THEN the status names Schwab, is live, not connected, and says why and what to know
    assert body["served_by"] == "schwab"
    assert body["paper"] is False
    assert body["live_orders"] is False
    assert body["connected"] is False
    assert "token" in body["problem"].lower()
    assert "no paper environment" in body["note"]


def test_the_executing_venue_is_a_setting_and_a_missing_one_stops_the_start() -> None:
    from kyperian.adapters.brokers.paper import PaperBroker
    from kyperian.adapters.brokers.venues import VenueNotConfigured
    from kyperian.engine.services import _executing_venue
    from tests.unit.engine.fakes import MemoryPaperStore

    paper = PaperBroker(MemoryPaperStore())
    # GIVEN orders pointed at IB, which has no gateway host
    settings = Settings(environment="test", broker_venue="ibkr")
    # WHEN the engine picks its executing venue THEN it refuses, naming the setting
    with pytest.raises(VenueNotConfigured, match="KYPERIAN_IBKR_HOST"):
        _executing_venue(settings, paper, Venues(settings))
    # AND the default executes on paper, in the paper ledger account
    default = Settings(environment="test")
    assert _executing_venue(default, paper, Venues(default)) == (paper, default.paper_account_id)
    # AND a live venue gets its own ledger account, paper and live kept apart
    alpaca = Settings(
        environment="test", broker_venue="alpaca", broker_credentials=SecretStr(ALPACA_ONLY)
    )
    venue, account_id = _executing_venue(alpaca, paper, Venues(alpaca))
    assert (venue.name, account_id) == ("alpaca", "alpaca-paper")


def test_the_watch_refreshes_schwab_and_reports_days_left() -> None:
    # GIVEN a configured Schwab venue whose adapter reports the token's days left
    from kyperian.engine.venue_watch import VenueWatch

    reported: list[float] = []

    class Schwab:
        name = "schwab"

        def fresh_token(self) -> None:
            reported.append(4.5)

    settings = Settings(
        environment="test",
        broker_credentials=SecretStr(json.dumps({"schwab": {"app_key": "k", "app_secret": "s"}})),
    )
    venues = Venues(settings, builders={"schwab": lambda _: cast(Broker, Schwab())})
    # WHEN the watch ticks THEN the token was checked through the adapter
    VenueWatch(venues).tick()
    assert reported == [4.5]


@pytest.mark.parametrize("route", ["status", "account", "positions", "orders"])
def test_venue_routes_need_a_caller(client: TestClient, route: str) -> None:
    # GIVEN no credentials WHEN a venue route is asked THEN it is refused before any venue call
    response = client.get(f"/broker/alpaca/{route}")
    assert response.status_code == 401

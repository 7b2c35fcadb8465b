"""The Alpaca venue against recorded HTTP exchanges (``responses``; alpaca-py uses requests).

The bodies are Alpaca's documented JSON (tests/events/brokers/alpaca_*.json): an order,
the account, positions; errors are the documented ``{"code", "message"}`` objects.
No test reaches a venue.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from kyperian.adapters.brokers.alpaca import AlpacaBroker, AlpacaConfig
from kyperian.adapters.brokers.alpaca.execution import make_client
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderStatus, OrderType
from kyperian.domain.errors import (
    InvalidOrderError,
    OperationalError,
    RateLimited,
    TemporaryError,
)
from tests.events.load import load_event

PAPER = "https://paper-api.alpaca.markets/v2"
LIVE = "https://api.alpaca.markets/v2"


def _order(**changes: object) -> dict[str, object]:
    body = load_event("brokers/alpaca_order_accepted.json")
    body.update(changes)
    return body


def _error(code: int, message: str) -> str:
    return json.dumps({"code": code, "message": message})


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def broker(slept: list[float]) -> AlpacaBroker:
    config = AlpacaConfig.model_validate({"api_key_id": "PKTEST", "api_secret_key": "secret"})
    return AlpacaBroker(config, sleep=slept.append)


def _buy(**changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "client_order_id": "dec-0001",
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "quantity": Decimal(15),
    }
    fields.update(changes)
    return OrderRequest.model_validate(fields)


@responses.activate
def test_an_accepted_market_order_is_sent_once_with_the_client_order_id(
    broker: AlpacaBroker,
) -> None:
    # GIVEN Alpaca accepts the order
    posted = responses.post(
        f"{PAPER}/orders",
        json=_order(),
        match=[
            matchers.json_params_matcher(
                {
                    "symbol": "AAPL",
                    "qty": 15.0,
                    "side": "buy",
                    "type": "market",
                    "time_in_force": "day",
                    "client_order_id": "dec-0001",
                }
            ),
            matchers.header_matcher({"APCA-API-KEY-ID": "PKTEST", "APCA-API-SECRET-KEY": "secret"}),
        ],
    )
    # WHEN the engine submits
    order = broker.submit_order(_buy())
    # THEN one request went out and the order is ACCEPTED under Alpaca's id
    assert posted.call_count == 1
    assert order.status is OrderStatus.ACCEPTED
    assert order.order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert order.client_order_id == "dec-0001"
    assert order.quantity == Decimal(15)


@responses.activate
def test_insufficient_buying_power_is_a_refusal_and_is_not_retried(
    broker: AlpacaBroker,
) -> None:
    # GIVEN Alpaca refuses the order for buying power (403, documented code 40310000)
    posted = responses.post(
        f"{PAPER}/orders", body=_error(40310000, "insufficient buying power"), status=403
    )
    # WHEN the engine submits THEN the refusal says why and only one request was made
    with pytest.raises(InvalidOrderError, match="insufficient buying power"):
        broker.submit_order(_buy())
    assert posted.call_count == 1


@responses.activate
def test_pattern_day_trader_protection_is_a_refusal(broker: AlpacaBroker) -> None:
    # GIVEN the account is flagged under the PDT rule
    responses.post(
        f"{PAPER}/orders",
        body=_error(40310100, "trade denied due to pattern day trading protection"),
        status=403,
    )
    # WHEN submitting THEN it is a refusal naming the rule
    with pytest.raises(InvalidOrderError, match="pattern day trading"):
        broker.submit_order(_buy())


@responses.activate
def test_market_closed_is_a_refusal_naming_it(broker: AlpacaBroker) -> None:
    # GIVEN Alpaca will not take the order while the market is closed
    responses.post(
        f"{PAPER}/orders", body=_error(42210000, "market is closed for this asset"), status=422
    )
    # WHEN submitting THEN the reason says "market closed"
    with pytest.raises(InvalidOrderError, match="market closed"):
        broker.submit_order(_buy(extended_hours=True))


@responses.activate
def test_a_rate_limited_submit_is_not_retried_and_says_when_to_come_back(
    broker: AlpacaBroker, slept: list[float]
) -> None:
    # GIVEN Alpaca answers 429 with its reset header 5 s ahead
    reset = "9999999999"
    posted = responses.post(
        f"{PAPER}/orders",
        body=_error(42910000, "rate limit exceeded"),
        status=429,
        headers={"X-RateLimit-Reset": reset},
    )
    # WHEN the engine submits THEN it gets RateLimited (temporary) after exactly one request
    with pytest.raises(RateLimited) as caught:
        broker.submit_order(_buy())
    assert posted.call_count == 1
    assert slept == []
    assert caught.value.retry_after == 30.0  # capped


@responses.activate
def test_reads_wait_for_the_rate_limit_reset_then_succeed(
    broker: AlpacaBroker, slept: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the first account read is rate limited until now + 2 s, the second succeeds
    monkeypatch.setattr("kyperian.adapters.brokers.alpaca.execution.time.time", lambda: 1000.0)
    responses.get(
        f"{PAPER}/account",
        body=_error(42910000, "rate limit exceeded"),
        status=429,
        headers={"X-RateLimit-Reset": "1002"},
    )
    responses.get(f"{PAPER}/account", json=load_event("brokers/alpaca_account.json"))
    # WHEN the account is read
    account = broker.account()
    # THEN it waited for the reset once and returned the documented figures
    assert slept == [2.0]
    assert account.account_id == "PA2WZXVBQ9ZQ"
    assert account.equity == Decimal("103820.56")
    assert account.buying_power == Decimal("415282.24")


@responses.activate
def test_reads_do_not_wait_out_a_long_rate_limit(
    broker: AlpacaBroker, slept: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the rate limit resets in 20 s, longer than a read may wait
    monkeypatch.setattr("kyperian.adapters.brokers.alpaca.execution.time.time", lambda: 1000.0)
    responses.get(
        f"{PAPER}/account",
        body=_error(42910000, "rate limit exceeded"),
        status=429,
        headers={"X-RateLimit-Reset": "1020"},
    )
    # WHEN the account is read THEN it fails at once, saying when to come back
    with pytest.raises(RateLimited) as caught:
        broker.account()
    assert slept == []
    assert caught.value.retry_after == 20.0
    assert len(responses.calls) == 1


@responses.activate
def test_a_submit_timeout_is_temporary_then_find_order_reconciles(broker: AlpacaBroker) -> None:
    # GIVEN the submit times out although Alpaca accepted the order
    posted = responses.post(f"{PAPER}/orders", body=requests.Timeout("read timed out"))
    responses.get(
        f"{PAPER}/orders:by_client_order_id",
        json=_order(status="filled", filled_qty="15", filled_avg_price="189.42"),
        match=[matchers.query_param_matcher({"client_order_id": "dec-0001"})],
    )
    # WHEN the engine submits THEN the outcome is reported unknown, without a resubmit
    with pytest.raises(TemporaryError, match="reconcile with find_order"):
        broker.submit_order(_buy())
    assert posted.call_count == 1
    # AND find_order finds the order by its client order id
    found = broker.find_order("dec-0001")
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert found.average_fill_price == Decimal("189.42")


@responses.activate
def test_find_order_answers_none_when_alpaca_never_saw_the_id(broker: AlpacaBroker) -> None:
    # GIVEN Alpaca does not know the client order id (404)
    responses.get(
        f"{PAPER}/orders:by_client_order_id",
        body=_error(40410000, "order not found"),
        status=404,
    )
    # WHEN reconciling THEN there is no order (safe to decide again), not an error
    assert broker.find_order("dec-0404") is None


@responses.activate
@pytest.mark.parametrize(
    ("alpaca_status", "filled", "expected"),
    [
        ("partially_filled", "5", OrderStatus.PARTIALLY_FILLED),
        ("filled", "15", OrderStatus.FILLED),
        ("rejected", "0", OrderStatus.REJECTED),
        ("canceled", "0", OrderStatus.CANCELED),
        ("done_for_day", "0", OrderStatus.EXPIRED),
        ("pending_new", "0", OrderStatus.ACCEPTED),
    ],
)
def test_order_states_map_to_the_contract(
    broker: AlpacaBroker, alpaca_status: str, filled: str, expected: OrderStatus
) -> None:
    # GIVEN an order in one of Alpaca's states
    order_id = "61e69015-8549-4bfd-b9c3-01e75843f47d"
    responses.get(
        f"{PAPER}/orders/{order_id}", json=_order(status=alpaca_status, filled_qty=filled)
    )
    # WHEN it is read THEN the contract's status and filled quantity follow
    order = broker.get_order(order_id)
    assert order.status is expected
    assert order.filled_quantity == Decimal(filled)
    assert (order.reason is not None) == (
        not expected.is_open and expected is not OrderStatus.FILLED
    )


@responses.activate
def test_revoked_keys_are_an_operational_error_naming_the_secret(broker: AlpacaBroker) -> None:
    # GIVEN the keys were revoked (401)
    responses.get(
        f"{PAPER}/account", body=_error(40110000, "request is not authorized"), status=401
    )
    # WHEN the venue is checked THEN a human is told where the keys live, without retries
    with pytest.raises(OperationalError, match="KYPERIAN_BROKER_CREDENTIALS"):
        broker.check()
    assert len(responses.calls) == 1


@responses.activate
def test_a_bracket_order_carries_take_profit_and_stop_loss(broker: AlpacaBroker) -> None:
    # GIVEN a limit buy with both exits
    posted = responses.post(
        f"{PAPER}/orders",
        json=_order(order_class="bracket", type="limit", limit_price="190"),
        match=[
            matchers.json_params_matcher(
                {
                    "symbol": "AAPL",
                    "qty": 15.0,
                    "side": "buy",
                    "type": "limit",
                    "limit_price": 190.0,
                    "time_in_force": "gtc",
                    "client_order_id": "dec-0001",
                    "order_class": "bracket",
                    "take_profit": {"limit_price": 210.0},
                    "stop_loss": {"stop_price": 180.0},
                }
            )
        ],
    )
    # WHEN submitted
    request = _buy(
        order_type=OrderType.LIMIT,
        limit_price=Decimal(190),
        time_in_force="GTC",
        take_profit=Decimal(210),
        stop_loss=Decimal(180),
    )
    order = broker.submit_order(request)
    # THEN Alpaca received one bracket order
    assert posted.call_count == 1
    assert order.limit_price == Decimal(190)


@responses.activate
def test_fractional_crypto_is_sent_as_alpacas_pair(broker: AlpacaBroker) -> None:
    # GIVEN a fractional BTCUSDT buy (TradingView's Binance symbol)
    posted = responses.post(
        f"{PAPER}/orders",
        json=_order(symbol="BTC/USDT", qty="0.0125", time_in_force="gtc"),
        match=[
            matchers.json_params_matcher({"symbol": "BTC/USDT", "qty": 0.0125}, strict_match=False)
        ],
    )
    # WHEN submitted THEN Alpaca gets BTC/USDT and the order reads back fractional
    order = broker.submit_order(
        _buy(symbol="BTCUSDT", quantity=Decimal("0.0125"), time_in_force="GTC")
    )
    assert posted.call_count == 1
    assert order.quantity == Decimal("0.0125")


@responses.activate
def test_a_perpetual_is_refused_before_any_request(broker: AlpacaBroker) -> None:
    # GIVEN a TradingView perpetual symbol WHEN submitted THEN a refusal, and no HTTP call
    with pytest.raises(InvalidOrderError, match=r"cannot trade BTCUSDT\.P: no perpetual"):
        broker.submit_order(_buy(symbol="BTCUSDT.P"))
    assert len(responses.calls) == 0


@responses.activate
def test_positions_are_signed_and_named_as_the_engine_names_them(broker: AlpacaBroker) -> None:
    # GIVEN a long stock, a crypto holding and a short share class
    responses.get(f"{PAPER}/positions", json=load_event("brokers/alpaca_positions.json"))
    # WHEN positions are read
    positions = {p.symbol: p for p in broker.positions()}
    # THEN shorts are negative and symbols are the engine's
    assert positions["AAPL"].quantity == Decimal(5)
    assert positions["AAPL"].unrealized_pnl == Decimal(100)
    assert positions["BTCUSD"].quantity == Decimal("0.0125")
    assert positions["BRK.B"].quantity == Decimal(-3)


@responses.activate
def test_a_server_error_on_reads_is_retried_then_reported_temporary(
    broker: AlpacaBroker, slept: list[float]
) -> None:
    # GIVEN Alpaca keeps answering 503
    responses.get(f"{PAPER}/positions", body=_error(50300000, "unavailable"), status=503)
    # WHEN positions are read THEN three attempts, growing waits, then TemporaryError
    with pytest.raises(TemporaryError, match="503"):
        broker.positions()
    assert len(responses.calls) == 3
    assert slept == [1.0, 2.0]


@responses.activate
def test_live_configuration_talks_to_the_live_endpoint() -> None:
    # GIVEN live keys
    config = AlpacaConfig.model_validate(
        {"api_key_id": "AKLIVE", "api_secret_key": "s", "paper": False}
    )
    responses.get(f"{LIVE}/account", json=load_event("brokers/alpaca_account.json"))
    broker = AlpacaBroker(config)
    # WHEN the account is read THEN the live host answered and caps say not paper
    assert broker.account().currency == "USD"
    assert broker.caps.paper is False


def test_the_client_sets_a_timeout_and_no_sdk_retries() -> None:
    # GIVEN a client built for the venue
    config = AlpacaConfig.model_validate(
        {"api_key_id": "k", "api_secret_key": "s", "timeout_seconds": 4}
    )
    client = make_client(config)
    # THEN alpaca-py will not retry by itself and every request carries our timeout
    assert client._retry == 0
    assert client._session._timeout == 4  # type: ignore[attr-defined]


def test_incomplete_credentials_name_the_missing_field() -> None:
    # GIVEN an alpaca section without a secret key WHEN building THEN the field is named
    with pytest.raises(OperationalError, match="api_secret_key"):
        AlpacaConfig.from_section({"api_key_id": "k"})

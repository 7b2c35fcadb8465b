"""The Schwab venue against recorded HTTP exchanges (``respx``; schwab-py uses httpx).

Bodies follow Schwab's documented Trader API examples (tests/events/brokers/schwab_*.json);
the token lives in Secrets Manager (moto, in-process), in schwab-py's own format.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest
import respx
from moto import mock_aws

from kyperian.adapters.brokers.schwab import SchwabBroker, SchwabConfig
from kyperian.adapters.brokers.schwab.token import SchwabTokenStore, StoredToken
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderStatus, OrderType
from kyperian.domain.errors import (
    InvalidOrderError,
    OperationalError,
    RateLimited,
    TemporaryError,
)
from tests.events.load import load_event

API = "https://api.schwabapi.com"
SECRET_ID = "/kyperian/test/broker/schwab-token"
NOW = 1_800_000_000.0
HASH = "E5B1A2C3D4"
ORDERS = f"{API}/trader/v1/accounts/{HASH}/orders"
LOGIN = int(NOW) - 2 * 86400  # logged in two days ago: five days left


def _token(expires_in: float, access: str = "access-1") -> dict[str, Any]:
    return {
        "creation_timestamp": LOGIN,
        "token": {
            "access_token": access,
            "refresh_token": "refresh-1",
            "token_type": "Bearer",
            "expires_in": 1800,
            "scope": "api",
            "id_token": "id",
            "expires_at": int(NOW + expires_in),
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=SECRET_ID, SecretString=json.dumps(_token(1200)))
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _broker(secrets: Any, clock: Clock, live: bool = True, **extra: Any) -> SchwabBroker:
    config = SchwabConfig.model_validate(
        {
            "app_key": "app-key",
            "app_secret": "app-secret",
            "token_secret_id": SECRET_ID,
            "live_orders": live,
        }
    )
    store = SchwabTokenStore(SECRET_ID, secrets, cache_seconds=0, clock=clock)
    return SchwabBroker(config, store, clock=clock, **extra)


@pytest.fixture
def schwab() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/trader/v1/accounts/accountNumbers").respond(
            json=[{"accountNumber": "12345678", "hashValue": HASH}]
        )
        yield router


def _order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(load_event("brokers/schwab_order.json"))
    body.update(changes)
    return body


def _limit_buy(**changes: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": "dec-0001",
        "symbol": "AAPL",
        "side": OrderSide.BUY,
        "quantity": Decimal(10),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("150.25"),
    }
    fields.update(changes)
    return OrderRequest.model_validate(fields)


def _stored(secrets: Any) -> StoredToken:
    text = secrets.get_secret_value(SecretId=SECRET_ID)["SecretString"]
    return StoredToken.parse(text, SECRET_ID)


def test_account_and_positions_use_the_shared_token_without_refreshing(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN a token with 20 minutes left (beyond the 10-minute margin)
    account = schwab.get(f"{API}/trader/v1/accounts/{HASH}").respond(
        json=load_event("brokers/schwab_account.json")
    )
    refresh = schwab.post(f"{API}/v1/oauth/token")
    broker = _broker(secrets, clock)
    # WHEN account and positions are read
    summary = broker.account()
    positions = broker.positions()
    # THEN Schwab saw the stored bearer token, and no refresh happened
    assert account.calls.last.request.headers["Authorization"] == "Bearer access-1"
    assert not refresh.called
    assert summary.equity == Decimal("9150.25")
    assert summary.buying_power == Decimal("10000.5")
    assert summary.account_id == "****5678"
    # AND the share class comes back as the engine names it
    assert positions[0].symbol == "BRK.B"
    assert positions[0].quantity == Decimal(10)
    assert positions[0].market_price == Decimal(415)


def test_an_access_token_near_expiry_is_refreshed_once_and_shared(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN the stored access token expires in 5 minutes
    secrets.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(_token(300)))
    refreshed = _token(1800, access="access-2")["token"]
    refresh = schwab.post(f"{API}/v1/oauth/token").respond(json=refreshed)
    days: list[float] = []
    broker = _broker(secrets, clock, on_token=days.append)
    # WHEN the venue is used
    broker.check()
    # THEN one refresh used the refresh token with the app's basic auth
    assert refresh.call_count == 1
    form = refresh.calls.last.request.content.decode()
    assert "grant_type=refresh_token" in form
    assert "refresh_token=refresh-1" in form
    assert refresh.calls.last.request.headers["Authorization"].startswith("Basic ")
    # AND the new token is in the secret for every task, the login time kept
    stored = _stored(secrets)
    assert stored.token["access_token"] == "access-2"
    assert stored.creation_timestamp == LOGIN
    # AND the refresh token's remaining life was reported (5 days)
    assert days
    assert days[-1] == pytest.approx(5.0)


def test_a_token_another_task_refreshed_is_adopted_without_a_refresh(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN this task cached an almost expired token
    secrets.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(_token(300)))
    store = SchwabTokenStore(SECRET_ID, secrets, cache_seconds=3600, clock=clock)
    store.read()
    # AND meanwhile another task stored a fresh one
    secrets.put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps(_token(1800, access="other-task"))
    )
    refresh = schwab.post(f"{API}/v1/oauth/token")
    config = SchwabConfig.model_validate(
        {"app_key": "k", "app_secret": "s", "token_secret_id": SECRET_ID}
    )
    broker = SchwabBroker(config, store, clock=clock)
    # WHEN the token is needed THEN the other task's token is used and nobody refreshes
    assert broker.fresh_token().token["access_token"] == "other-task"
    assert not refresh.called


def test_two_tasks_refreshing_the_same_token_store_only_the_first(
    secrets: Any, clock: Clock
) -> None:
    # GIVEN two tasks that refreshed the same old token at the same time
    old = _stored(secrets)
    first = StoredToken(old.creation_timestamp, _token(1800, access="first")["token"])
    second = StoredToken(old.creation_timestamp, _token(1800, access="second")["token"])
    task_a = SchwabTokenStore(SECRET_ID, secrets, clock=clock)
    task_b = SchwabTokenStore(SECRET_ID, secrets, clock=clock)
    # WHEN both write, replacing the same token
    kept_a = task_a.write(first, replacing=old)
    kept_b = task_b.write(second, replacing=old)
    # THEN the first write wins, and the second task adopts it instead of overwriting
    assert kept_a.token["access_token"] == "first"
    assert kept_b.token["access_token"] == "first"
    assert _stored(secrets).token["access_token"] == "first"


def test_an_expired_refresh_token_asks_for_a_new_login(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab refuses the refresh token (it is over 7 days old or revoked)
    secrets.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(_token(60)))
    schwab.post(f"{API}/v1/oauth/token").respond(
        400, json={"error": "invalid_grant", "error_description": "refresh token expired"}
    )
    broker = _broker(secrets, clock)
    # WHEN the venue is used THEN a person is told to log in again
    with pytest.raises(OperationalError, match="kyperian broker login schwab"):
        broker.account()


def test_a_revoked_access_token_asks_for_a_new_login(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab answers 401 to an API call
    schwab.get(f"{API}/trader/v1/accounts/{HASH}").respond(
        401, json={"message": "Client not authorized"}
    )
    # WHEN the account is read THEN the error names the login command
    with pytest.raises(OperationalError, match="kyperian broker login schwab"):
        _broker(secrets, clock).account()


def test_orders_are_refused_without_the_live_setting(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN live orders are not enabled (Schwab has no paper environment)
    placed = schwab.post(ORDERS)
    # WHEN an order is submitted THEN it is refused naming the setting, and nothing is sent
    broker = _broker(secrets, clock, live=False)
    with pytest.raises(InvalidOrderError, match="KYPERIAN_SCHWAB_LIVE_ORDERS"):
        broker.submit_order(_limit_buy())
    assert not placed.called
    # AND reconciliation knows for sure that Schwab never saw it
    assert broker.find_order("dec-0001") is None


def test_an_order_this_process_never_saw_is_left_to_a_person(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN a client order id from before a restart (Schwab orders carry no client id)
    # WHEN reconciled THEN the adapter says it cannot tell, rather than "not there"
    with pytest.raises(OperationalError, match="check the account's orders"):
        _broker(secrets, clock).find_order("dec-from-before")


def test_an_accepted_limit_order_is_placed_once_and_read_back(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab accepts the order (201 with its Location) and reports it WORKING
    placed = schwab.post(ORDERS).respond(
        201, headers={"Location": f"{API}/trader/v1/accounts/{HASH}/orders/1000000123456"}
    )
    schwab.get(f"{ORDERS}/1000000123456").respond(json=_order())
    broker = _broker(secrets, clock)
    # WHEN submitted
    order = broker.submit_order(_limit_buy())
    # THEN Schwab got one single-leg equity limit order
    assert placed.call_count == 1
    body = json.loads(placed.calls.last.request.content)
    assert body == {
        "orderType": "LIMIT",
        "session": "NORMAL",
        "duration": "DAY",
        "orderStrategyType": "SINGLE",
        "price": "150.25",
        "orderLegCollection": [
            {
                "instruction": "BUY",
                "quantity": 10,
                "instrument": {"symbol": "AAPL", "assetType": "EQUITY"},
            }
        ],
    }
    # AND the order reads back open under the engine's client order id
    assert order.status is OrderStatus.ACCEPTED
    assert order.client_order_id == "dec-0001"
    assert order.order_id == "1000000123456"
    assert broker.find_order("dec-0001") == order


def test_a_rejected_order_is_a_refusal_with_schwabs_message(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab rejects the order body
    schwab.post(ORDERS).respond(
        400, json={"message": "Order quantity exceeds buying power", "errors": []}
    )
    # WHEN submitted THEN the refusal carries Schwab's reason
    with pytest.raises(InvalidOrderError, match="exceeds buying power"):
        _broker(secrets, clock).submit_order(_limit_buy())


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("WORKING", 4, OrderStatus.PARTIALLY_FILLED),
        ("QUEUED", 0, OrderStatus.ACCEPTED),
        ("FILLED", 10, OrderStatus.FILLED),
        ("REJECTED", 0, OrderStatus.REJECTED),
        ("CANCELED", 0, OrderStatus.CANCELED),
        ("EXPIRED", 0, OrderStatus.EXPIRED),
    ],
)
def test_schwab_states_map_to_the_contract(
    secrets: Any,
    clock: Clock,
    schwab: respx.MockRouter,
    status: str,
    filled: int,
    expected: OrderStatus,
) -> None:
    # GIVEN an order in one of Schwab's states, with executions for what filled
    legs = [{"executionLegs": [{"quantity": filled, "price": 150.0}]}] if filled else []
    schwab.get(f"{ORDERS}/77").respond(
        json=_order(orderId=77, status=status, filledQuantity=filled, orderActivityCollection=legs)
    )
    # WHEN read THEN the status, fills and average price follow
    order = _broker(secrets, clock).get_order("77")
    assert order.status is expected
    assert order.filled_quantity == Decimal(filled)
    assert order.average_fill_price == (Decimal(150) if filled else None)


def test_a_market_closed_rejection_carries_its_description(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab rejected a stored order because the market was closed
    schwab.get(f"{ORDERS}/78").respond(
        json=_order(orderId=78, status="REJECTED", statusDescription="Market is closed")
    )
    # WHEN read THEN the reason says so
    order = _broker(secrets, clock).get_order("78")
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "Market is closed"


def test_rate_limited_calls_say_when_to_retry(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN Schwab throttles the account endpoint
    schwab.get(f"{API}/trader/v1/accounts/{HASH}").respond(429, headers={"Retry-After": "7"})
    # WHEN the account is read THEN RateLimited says 7 seconds
    with pytest.raises(RateLimited) as caught:
        _broker(secrets, clock).account()
    assert caught.value.retry_after == 7.0


def test_a_submit_timeout_is_reconciled_by_searching_the_accounts_orders(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN the submit times out, though Schwab placed the order
    placed = schwab.post(ORDERS).mock(side_effect=httpx.ReadTimeout("timed out"))
    other = _order(orderId=90, quantity=3, orderLegCollection=_order()["orderLegCollection"])
    schwab.get(ORDERS).respond(json=[other, _order(orderId=91)])
    schwab.get(f"{ORDERS}/91").respond(json=_order(orderId=91, status="FILLED", filledQuantity=10))
    broker = _broker(secrets, clock)
    # WHEN submitted THEN the outcome is unknown and nothing was resent
    with pytest.raises(TemporaryError, match="reconcile with find_order"):
        broker.submit_order(_limit_buy())
    assert placed.call_count == 1
    # AND find_order picks the one order matching what was asked (not the 3-share one)
    found = broker.find_order("dec-0001")
    assert found is not None
    assert found.order_id == "91"
    assert found.status is OrderStatus.FILLED


def test_two_matching_orders_are_left_to_a_person(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    # GIVEN a timed-out submit and two identical orders at Schwab
    schwab.post(ORDERS).mock(side_effect=httpx.ConnectTimeout("timed out"))
    schwab.get(ORDERS).respond(json=[_order(orderId=1), _order(orderId=2)])
    broker = _broker(secrets, clock)
    with pytest.raises(TemporaryError):
        broker.submit_order(_limit_buy())
    # WHEN reconciling THEN the adapter does not guess
    with pytest.raises(OperationalError, match="a person must decide"):
        broker.find_order("dec-0001")


def test_crypto_is_refused_before_any_request(
    secrets: Any, clock: Clock, schwab: respx.MockRouter
) -> None:
    placed = schwab.post(ORDERS)
    with pytest.raises(InvalidOrderError, match="schwab cannot trade BTCUSDT"):
        _broker(secrets, clock).submit_order(_limit_buy(symbol="BTCUSDT"))
    assert not placed.called


def test_a_missing_token_secret_names_the_login_command(clock: Clock) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        store = SchwabTokenStore("/kyperian/test/none", client, clock=clock)
        with pytest.raises(OperationalError, match="kyperian broker login schwab"):
            store.read()

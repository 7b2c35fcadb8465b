"""The engine API over the ledger: orders, approvals, positions, account, the kill switch."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from kyperian.domain.decisions import Decision
from kyperian.domain.models import Action
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.execution import OrderExecutor
from kyperian.settings import Settings
from tests.engine_auth import AUTH_HEADERS, ENGINE_TOKEN
from tests.integration.execution.conftest import LedgerAws
from tests.signal_factory import NOW
from tests.unit.engine.conftest import build_engine

pytestmark = pytest.mark.integration


def _decision(decision_id: str, price: float = 100.0) -> Decision:
    return Decision(
        decision_id=decision_id, symbol="AAPL", action=Action.BUY, score=0.5, confidence=0.8,
        position_size=0.05, price=price, decided_at=NOW,
    )  # fmt: skip


@pytest.fixture
def executor(ledger_aws: LedgerAws) -> OrderExecutor:
    return ledger_aws.executor(ledger_aws.new_account(), approval=True, approval_seconds=600)


@pytest.fixture
def client(executor: OrderExecutor) -> Iterator[TestClient]:
    engine = build_engine()
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN, approval_mode=True),
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=None,
        ledger=executor.ledger,
        execution=executor,
    )
    with TestClient(create_app(services), headers=AUTH_HEADERS) as test_client:
        yield test_client


def test_money_routes_need_a_caller(client: TestClient) -> None:
    # GIVEN no credential  WHEN any money route is called  THEN 401, nothing changes
    for method, path in (("get", "/positions"), ("get", "/account"), ("post", "/halt")):
        response = client.request(method, path, headers={"Authorization": ""})
        assert response.status_code == 401, path


def test_a_pending_order_is_listed_approved_and_held(
    client: TestClient, executor: OrderExecutor
) -> None:
    # GIVEN a decision waiting for approval
    executor.execute(_decision("a" * 32))

    # WHEN an operator lists pending orders and approves it
    [pending] = client.get("/orders", params={"status": "PENDING_APPROVAL"}).json()
    approved = client.post(f"/orders/{pending['client_order_id']}/approve")

    # THEN it named its decision, it is filled, and the position shows it
    assert pending["decision_id"] == "a" * 32
    assert approved.status_code == 200
    assert approved.json()["state"] == "FILLED"
    [position] = client.get("/positions").json()
    assert (position["symbol"], Decimal(position["quantity"])) == ("AAPL", Decimal(50))
    assert client.get("/orders", params={"symbol": "aapl", "status": "FILLED"}).json()
    # AND approving it again is a conflict naming its state; an unknown order is a 404
    again = client.post(f"/orders/{'a' * 32}/approve")
    assert again.status_code == 409
    assert "FILLED" in again.json()["detail"]
    assert client.post("/orders/nope/reject").status_code == 404


def test_a_rejected_order_never_reaches_the_venue(
    client: TestClient, executor: OrderExecutor
) -> None:
    # GIVEN a pending order  WHEN rejected  THEN recorded REJECTED, the venue has nothing
    executor.execute(_decision("b" * 32))
    rejected = client.post(f"/orders/{'b' * 32}/reject").json()
    assert rejected["state"] == "REJECTED"
    assert executor.venue.open_orders() == []
    assert executor.venue.find_order("b" * 32) is None


def test_halt_with_flatten_closes_everything_and_resume_reopens(
    client: TestClient, executor: OrderExecutor
) -> None:
    # GIVEN a filled position
    executor.execute(_decision("c" * 32))
    executor.approve("c" * 32)

    # WHEN halted with flatten
    halted = client.post("/halt", params={"flatten": "true", "reason": "drill"}).json()

    # THEN the account is halted, the position was closed by a recorded order, and a new
    # decision is refused with the reason
    assert (halted["account"]["halted"], halted["account"]["halt_reason"]) == (True, "drill")
    assert [o["state"] for o in halted["flatten_orders"]] == ["FILLED"]
    assert client.get("/positions").json() == []
    refused = executor.execute(_decision("d" * 32))
    assert refused is not None
    assert refused.order.reason == "trading halted: drill"
    # WHEN resumed  THEN orders flow again
    assert client.post("/resume").json()["halted"] is False
    assert executor.execute(_decision("e" * 32)).order.state.value == "PENDING_APPROVAL"  # type: ignore[union-attr]


def test_the_openapi_names_the_response_models(client: TestClient) -> None:
    # GIVEN the OpenAPI document  THEN each money route answers a named model
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"LedgerOrder", "LedgerPosition", "AccountView", "HaltResult"} <= set(schemas)
    for path in ("/orders", "/positions", "/account", "/halt", "/resume"):
        assert path in spec["paths"]


def test_an_expired_approval_reads_as_expired_and_cannot_be_approved(
    client: TestClient, executor: OrderExecutor, ledger_aws: LedgerAws
) -> None:
    # GIVEN an order waiting for approval (600 s) and no reconciliation tick since
    executor.execute(_decision("e" * 32))
    ledger_aws.clock.advance(600)

    # WHEN an operator lists pending orders and tries to approve it at its expiry
    pending = client.get("/orders", params={"status": "PENDING_APPROVAL"}).json()
    [listed] = client.get("/orders").json()
    approved = client.post(f"/orders/{'e' * 32}/approve")

    # THEN it is no longer pending but EXPIRED, and approving it is a conflict naming that
    assert pending == []
    assert (listed["client_order_id"], listed["state"]) == ("e" * 32, "EXPIRED")
    assert approved.status_code == 409
    assert "EXPIRED" in approved.json()["detail"]
    assert executor.venue.find_order("e" * 32) is None


def test_an_approval_due_to_expire_on_approve_is_refused_without_a_listing(
    client: TestClient, executor: OrderExecutor, ledger_aws: LedgerAws
) -> None:
    # GIVEN a pending order whose time ran out, never listed since
    executor.execute(_decision("f" * 32))
    ledger_aws.clock.advance(601)

    # WHEN it is approved, then rejected  THEN both are conflicts and it stays EXPIRED
    assert client.post(f"/orders/{'f' * 32}/approve").status_code == 409
    rejected = client.post(f"/orders/{'f' * 32}/reject")
    assert rejected.status_code == 409
    assert "EXPIRED" in rejected.json()["detail"]
    assert executor.venue.find_order("f" * 32) is None


def test_approving_while_halted_is_a_conflict_naming_the_halt(
    client: TestClient, executor: OrderExecutor
) -> None:
    # GIVEN a pending order, then the kill switch thrown
    executor.execute(_decision("g" * 32))
    client.post("/halt", params={"reason": "desk drill"})

    # WHEN an operator approves it
    approved = client.post(f"/orders/{'g' * 32}/approve")

    # THEN 409 naming the halt; the order still waits and the venue has nothing
    assert approved.status_code == 409
    assert "trading halted: desk drill" in approved.json()["detail"]
    [pending] = client.get("/orders", params={"status": "PENDING_APPROVAL"}).json()
    assert pending["client_order_id"] == "g" * 32
    assert executor.venue.find_order("g" * 32) is None

"""The engine's HTTP API over in-memory ports: health, signals, decisions, paper positions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from kyperian.domain.brokers import OrderRequest, OrderSide
from kyperian.domain.engine_ports import QueueMessage
from kyperian.engine.api.deps import get_clock
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.engine.worker import QueueWorker
from kyperian.settings import Settings
from tests.engine_auth import AUTH_HEADERS, ENGINE_TOKEN
from tests.signal_factory import envelope, make_signal
from tests.unit.engine.conftest import Engine
from tests.unit.engine.fakes import MemoryQueue


def _services(engine: Engine, worker: QueueWorker | None = None) -> EngineServices:
    return EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN),
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=worker,
    )


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(_services(engine))
    app.dependency_overrides[get_clock] = lambda: engine.clock.wall
    with TestClient(app, headers=AUTH_HEADERS) as test_client:
        yield test_client


def _decide(engine: Engine, *signals: object) -> None:
    for index, signal in enumerate(signals):
        engine.processor.handle(QueueMessage(f"m-{index}", "r", envelope(signal), 1))  # type: ignore[arg-type]
        engine.clock.advance(1)


def test_health_is_ok_with_redis_and_no_worker(client: TestClient) -> None:
    # GIVEN a running engine without a queue  WHEN the ALB checks (no credential)
    response = client.get("/health", headers={"Authorization": ""})
    # THEN 200 and one word, nothing more
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # WHEN an operator asks for the details  THEN the whole report
    details = client.get("/health/details").json()
    assert details | {"version": "x"} == {
        "status": "ok", "redis": "ok", "worker": "DISABLED", "worker_error": None, "version": "x",
    }  # fmt: skip


def test_health_stays_200_but_degraded_when_redis_is_down(
    client: TestClient, engine: Engine
) -> None:
    # GIVEN Redis down (the engine decides from the table)  WHEN checked  THEN healthy, degraded
    engine.cache.down = True
    assert client.get("/health").json() == {"status": "degraded"}
    body = client.get("/health/details").json()
    assert (body["status"], body["redis"]) == ("degraded", "unavailable")


def test_health_fails_when_the_worker_thread_has_died(engine: Engine) -> None:
    # GIVEN a worker that was started and has stopped without being asked
    worker = QueueWorker(MemoryQueue(), engine.processor, wait_seconds=0)
    app = create_app(_services(engine, worker))
    with TestClient(app, headers=AUTH_HEADERS) as test_client:
        worker._stop.set()
        assert worker._thread is not None
        worker._thread.join(2)

        # WHEN the ALB checks  THEN 503, so ECS replaces the task
        response = test_client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "failing"


def test_signals_are_read_from_the_cache_else_from_the_table(
    client: TestClient, engine: Engine
) -> None:
    # GIVEN one fresh 4h signal decided, and one stale 15m signal in the table only
    fresh = make_signal(timeframe="4h")
    _decide(engine, fresh)
    engine.history.signals += [fresh, make_signal(timeframe="15m", age=timedelta(hours=2))]

    # WHEN asked (lower-case symbol), first with Redis up then down
    cached = client.get("/signals/aapl").json()
    engine.cache.down = True
    stored = client.get("/signals/AAPL").json()

    # THEN both answers hold the fresh signal only, and say where they came from
    assert (cached["source"], [s["signal_id"] for s in cached["signals"]]) == (
        "cache",
        [fresh.signal_id],
    )
    assert (stored["source"], [s["signal_id"] for s in stored["signals"]]) == (
        "table",
        [fresh.signal_id],
    )


def test_latest_decision_comes_from_the_cache_then_the_table(
    client: TestClient, engine: Engine
) -> None:
    # GIVEN no decision yet  WHEN asked  THEN 404
    assert client.get("/decisions/AAPL").status_code == 404

    # GIVEN a decision, later expired from the cache
    _decide(engine, make_signal(timeframe="4h"))
    decision = engine.decisions.items[0]
    assert client.get("/decisions/AAPL").json()["decision_id"] == decision.decision_id
    engine.cache.decisions.clear()

    # WHEN asked again  THEN the table answers the same decision
    body = client.get("/decisions/AAPL").json()
    assert body["decision_id"] == decision.decision_id
    assert body["decided_at"].endswith("Z")


def test_history_pages_newest_first(client: TestClient, engine: Engine) -> None:
    # GIVEN three decisions a second apart
    _decide(engine, *(make_signal(timeframe="4h", age=timedelta(minutes=3 - i)) for i in range(3)))
    ids = [d.decision_id for d in reversed(engine.decisions.items)]

    # WHEN read two at a time
    first = client.get("/decisions/AAPL/history", params={"limit": 2}).json()
    second = client.get(
        "/decisions/AAPL/history", params={"limit": 2, "before": first["next_before"]}
    ).json()

    # THEN the pages follow each other, newest first, and the last says there is no more
    assert [d["decision_id"] for d in first["decisions"]] == ids[:2]
    assert [d["decision_id"] for d in second["decisions"]] == ids[2:]
    assert second["next_before"] is None
    assert client.get("/decisions/AAPL/history", params={"limit": 0}).status_code == 422


def test_symbols_with_a_slash_are_reachable(client: TestClient, engine: Engine) -> None:
    # GIVEN a decision on BTC/USD  WHEN asked by path  THEN found, and so is its history
    _decide(engine, make_signal(symbol="BTC/USD", timeframe="1D"))
    assert client.get("/decisions/btc/usd").json()["symbol"] == "BTC/USD"
    assert len(client.get("/decisions/BTC/USD/history").json()["decisions"]) == 1


def test_paper_positions_are_visible(client: TestClient, engine: Engine) -> None:
    # GIVEN a paper buy of 3 at 100  WHEN positions are read  THEN one long of 3
    engine.broker.submit_order(
        OrderRequest(
            client_order_id="c1", symbol="AAPL", side=OrderSide.BUY, quantity=Decimal(3),
            reference_price=Decimal(100),
        )
    )  # fmt: skip
    [position] = client.get("/broker/paper/positions").json()
    assert (position["symbol"], Decimal(position["quantity"])) == ("AAPL", Decimal(3))
    assert Decimal(client.get("/broker/paper/account").json()["cash"]) == Decimal(99700)


def test_a_failing_store_answers_503_not_500(client: TestClient, engine: Engine) -> None:
    # GIVEN the Decisions table failing  WHEN history is asked  THEN 503 with Retry-After
    engine.decisions.down = True
    response = client.get("/decisions/AAPL/history")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_openapi_documents_every_route_with_its_response_model(client: TestClient) -> None:
    # GIVEN the app  WHEN its OpenAPI document is read  THEN each route names its schema
    spec = client.get("/openapi.json").json()
    routes = {
        "/health": "HealthStatus",
        "/health/details": "HealthReport",
        "/signals/{symbol}": "SignalsView",
        "/decisions/{symbol}": "Decision",
        "/decisions/{symbol}/history": "DecisionPage",
        "/broker/paper/account": "Account",
    }
    for path, schema in routes.items():
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith(f"/{schema}"), path
    positions = spec["paths"]["/broker/paper/positions"]["get"]["responses"]["200"]["content"]
    assert positions["application/json"]["schema"]["items"]["$ref"].endswith("/Position")

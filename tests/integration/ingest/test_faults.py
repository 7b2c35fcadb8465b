"""Fault injection against moto: an alert is accepted or refused whole, and in time.

Faults are injected into the real clients through botocore's event hooks (the request
never reaches moto: the connection is refused or times out; or PutEvents entries are
held back and reported failed, as EventBridge does when it throttles), so every call
goes through the same serialization, retries and timeouts as on AWS. The end state is
counted from the source of truth, the table and the queue the bus delivers to, never
from what the code returned:

- ``half_accepted_rows``: rows of alerts that are not whole once the sweeper has run
  (some of their signals stored and published, others not), plus rows of alerts that
  were refused (503) with their undo intact;
- ``events_without_row``: events on the queue whose signal has no row;
- ``giveup_s``: the longest time to an answer when EventBridge never answers (202, rows
  left pending for the sweeper) or cannot be reached and the undo's DynamoDB calls time
  out too (503); must stay under 9 (the Lambda's 10 s).

The test prints ``half_accepted_rows=0 events_without_row=0 giveup_s=<s><9``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.eventbridge import EventBridgePublisher
from kyperian.adapters.aws.secrets import CachedSecrets
from kyperian.ingest import handler
from kyperian.ingest.sweeper import Sweeper
from kyperian.settings import get_settings
from tests.aws_resources import API_KEY
from tests.conftest import FakeLambdaContext, IngestStack
from tests.events.load import http_event

CTX = FakeLambdaContext()
TIMEFRAMES = ["15", "30", "60", "240", "D", "W"]
SOURCES = ["luxalgo", "technicals"]


AT = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def mtf(symbol: str, size: int) -> dict[str, Any]:
    """An MTF alert of ``size`` entries (distinct timeframe and source pairs)."""
    pairs = [(tf, src) for src in SOURCES for tf in TIMEFRAMES][:size]
    return {
        "passphrase": API_KEY,
        "symbol": symbol,
        "source": "ai",
        "timestamp": AT,
        "signals": [{"timeframe": tf, "action": "buy", "source": src} for tf, src in pairs],
    }


def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(http_event(path="/webhook/mtf", body=body), CTX)
    return response["statusCode"], json.loads(response["body"])


class Faults:
    """botocore hooks on the handler's clients: refuse calls, cut PutEvents, stall calls."""

    def __init__(self) -> None:
        self.refuse: dict[str, int] = {}  # operation -> how many calls to refuse
        self.events_allowed: int | None = None  # PutEvents entries let through, in total
        self.stall: set[str] = set()  # operations that time out (after the read timeout)
        self.before_events: Callable[[], None] | None = None
        self._dropped: list[int] = []

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register_first("before-send.*.*", self._before_send)
        events.register_first("provide-client-params.events.PutEvents", self._cut_request)
        events.register_first("after-call.events.PutEvents", self._cut_answer)

    def _before_send(self, request: Any, **kwargs: Any) -> Any:
        operation = request.headers.get("X-Amz-Target", b"")
        operation = operation.decode() if isinstance(operation, bytes) else operation
        name = operation.rsplit(".", 1)[-1]
        if name == "PutEvents" and self.before_events is not None:
            self.before_events()
        # Raising stops the event: moto never sees the request, as if it never arrived.
        if name in self.stall:
            time.sleep(get_settings().ingest_aws_read_timeout)
            raise ReadTimeoutError(endpoint_url=request.url)
        if self.refuse.get(name, 0) > 0:
            self.refuse[name] -= 1
            raise EndpointConnectionError(endpoint_url=request.url)
        return None

    def _cut_request(self, params: dict[str, Any], **kwargs: Any) -> None:
        if self.events_allowed is None:
            return
        entries = params["Entries"]
        kept = entries[: self.events_allowed]
        self.events_allowed -= len(kept)
        self._dropped = list(range(len(kept), len(entries)))
        params["Entries"] = kept

    def _cut_answer(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        if not self._dropped:
            return
        failed = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
        parsed["Entries"] = parsed.get("Entries", []) + [failed for _ in self._dropped]
        parsed["FailedEntryCount"] = len(self._dropped)
        self._dropped = []


@pytest.fixture
def faults(ingest_stack: IngestStack) -> Faults:
    """The handler wired to moto with fault hooks on its DynamoDB and EventBridge clients."""
    injected = Faults()
    deps = handler.wiring()
    injected.attach(deps.store._client)  # type: ignore[attr-defined]
    injected.attach(deps.publisher._client)  # type: ignore[attr-defined]
    return injected


def table_rows(stack: IngestStack) -> dict[str, dict[str, Any]]:
    items = stack.clients["dynamodb"].scan(TableName=stack.resources.table)["Items"]
    return {item["signal_id"]["S"]: item for item in items}


def queued_ids(stack: IngestStack) -> list[str]:
    ids: list[str] = []
    while True:
        got = stack.clients["sqs"].receive_message(
            QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        if not got.get("Messages"):
            return ids
        for message in got["Messages"]:
            ids.append(json.loads(message["Body"])["detail"]["signal_id"])
            stack.clients["sqs"].delete_message(
                QueueUrl=stack.resources.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def sweep() -> None:
    """Run the sweeper as its schedule would, once the rows are old enough."""
    deps = handler.wiring()
    Sweeper(deps.store, deps.publisher).sweep(
        datetime.now(UTC) + timedelta(minutes=5), timedelta(minutes=2), limit=100
    )


def count(stack: IngestStack, alerts: list[tuple[int, list[str]]]) -> tuple[int, int]:
    """(half_accepted_rows, events_without_row) from the table and the queue."""
    rows = table_rows(stack)
    events = set(queued_ids(stack))
    known = {i for _, ids in alerts for i in ids}
    half = len(set(rows) - known)  # a row no alert explains
    for status, ids in alerts:
        present = [i for i in ids if i in rows and i in events]
        stored = [i for i in ids if i in rows]
        whole = len(present) == len(ids) or not stored
        if not whole or (status == 202 and len(present) != len(ids)):
            half += len(stored)
    return half, len(events - set(rows))


def ids_of(answer: dict[str, Any], body: dict[str, Any]) -> list[str]:
    if "signals" in answer:
        return [s["signal_id"] for s in answer["signals"]]
    # a refused alert: the ids it would have had, from the validator itself
    from kyperian.ingest.parse import ArrivalWindow, parse_mtf_alert

    payload = {k: v for k, v in body.items() if k != "passphrase"}
    return [
        s.signal_id for s in parse_mtf_alert(payload, ArrivalWindow.at(datetime.now(UTC), 7, 300))
    ]


def test_faults_never_half_accept_and_give_up_in_time(
    ingest_stack: IngestStack, faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts: list[tuple[int, list[str]]] = []

    def run(body: dict[str, Any]) -> int:
        status, answer = post(body)
        alerts.append((status, ids_of(answer, body)))
        return status

    # GIVEN alerts of every size, WHEN the bus refuses every attempt: THEN 503 and nothing
    for size in range(1, 11):
        faults.refuse["PutEvents"] = 99
        assert run(mtf(f"REFUSED{size}", size)) == 503
    faults.refuse.clear()
    # WHEN the bus takes only part of an alert (entries throttled on every attempt)
    faults.events_allowed = 4
    assert run(mtf("PARTIAL", 10)) == 202
    faults.events_allowed = None
    # WHEN the bus refuses and the undo fails too
    faults.refuse.update({"PutEvents": 99, "TransactWriteItems": 99, "DeleteItem": 99})
    assert run(mtf("NOUNDO", 6)) == 503
    assert run(mtf("NOUNDOONE", 1)) == 503
    faults.refuse.clear()
    # WHEN the bus takes the request but never answers (it may hold the events): accepted
    # whole, nothing undone, the sweeper publishes the rows (a second event is harmless)
    faults.stall.add("PutEvents")
    assert run(mtf("UNANSWERED", 3)) == 202
    faults.stall.clear()
    # WHEN the first of two identical alerts fails to publish while the second succeeds
    concurrent = _identical_alerts_race(faults, mtf("RACE", 5))
    alerts.extend(concurrent)
    # WHEN more than one publish batch is sent: refused whole with a 400 on `signals`
    status, answer = post({**mtf("TOOBIG", 10), "signals": mtf("X", 11)["signals"]})
    assert (status, answer["details"][0]["field"]) == (400, "signals")
    # THEN after the sweeper's run, every alert is whole and every event has its row
    sweep()
    half_accepted_rows, events_without_row = count(ingest_stack, alerts)

    # AND the give-up time: the bus never answers and the undo's calls time out too
    giveup_s = _give_up_seconds(ingest_stack)
    line = (
        f"half_accepted_rows={half_accepted_rows} events_without_row={events_without_row} "
        f"giveup_s={giveup_s:.2f}<9"
    )
    with capsys.disabled():
        print(f"\n{line}")
    assert (half_accepted_rows, events_without_row) == (0, 0), line
    assert giveup_s < 9, line


def _identical_alerts_race(faults: Faults, body: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """A's publish waits until B (identical) is done, then fails: A undoes, B stands."""
    b_done = threading.Event()
    a_thread = threading.current_thread()
    results: list[tuple[int, list[str]]] = []

    def before_events() -> None:
        if threading.current_thread() is a_thread and not b_done.is_set():
            b = threading.Thread(target=lambda: results.append(_post_ids(body)))
            faults.before_events = None
            b.start()
            b.join()
            b_done.set()
            faults.refuse["PutEvents"] = 99

    faults.before_events = before_events
    status, answer = post(body)
    faults.refuse.clear()
    faults.before_events = None
    assert [r[0] for r in results] == [202]
    assert status == 503
    return [*results, (status, ids_of(answer, body))]


def _post_ids(body: dict[str, Any]) -> tuple[int, list[str]]:
    status, answer = post(body)
    return status, ids_of(answer, body)


def _black_hole() -> tuple[socket.socket, str]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def _give_up_seconds(stack: IngestStack) -> float:
    """The longest time to an answer when the bus fails slowly and the undo times out too.

    Two worst cases: the bus takes the request and never answers (read timeouts; the events
    may be there, so the alert is accepted whole, 202, its rows left for the sweeper), and
    the bus is unreachable on every attempt (503 after an undo whose calls time out).
    """
    server, url = _black_hole()
    try:
        silent_status, silent_s = _timed_post(url, "SLOW", refuse_events=False)
    finally:
        server.close()
    down_status, down_s = _timed_post(None, "DOWN", refuse_events=True)
    assert (silent_status, down_status) == (202, 503)
    return max(silent_s, down_s)


def _timed_post(bus_url: str | None, symbol: str, refuse_events: bool) -> tuple[int, float]:
    settings = get_settings()
    bus_settings = (
        settings.model_copy(update={"aws_endpoint_url": bus_url}) if bus_url else settings
    )
    bus = handler.ingest_client("events", bus_settings, attempts=1)
    if refuse_events:
        unreachable = Faults()
        unreachable.attach(bus)
        unreachable.refuse["PutEvents"] = 99
    dynamodb = handler.ingest_client("dynamodb", settings)
    stall = Faults()
    stall.attach(dynamodb)
    stall.stall.update({"TransactWriteItems", "DeleteItem"})  # the undo times out too
    wired = handler.Wiring(
        settings,
        DynamoSignalStore(settings.signals_table, dynamodb),
        EventBridgePublisher(
            settings.event_bus_name,
            bus,
            attempts=settings.publish_attempts,
            budget_seconds=settings.publish_budget_seconds,
        ),
        CachedSecrets(handler.ingest_client("secretsmanager", settings), 300),
    )
    original = handler.wiring
    handler.wiring = lambda: wired  # type: ignore[assignment]
    try:
        handler.wiring().secrets.get(settings.api_key_secret_id)  # warm, as a live Lambda
        started = time.monotonic()
        status, _ = post(mtf(symbol, 10))
        return status, time.monotonic() - started
    finally:
        handler.wiring = original

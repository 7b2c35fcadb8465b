"""The emulator: every call timed per caller and operation; its shortcuts answer as moto does."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonpath_ng import ext
from moto import mock_aws

from kyperian.local.emulator import (
    STATS_PATH,
    Forward,
    Timed,
    query_one_partition,
    remember_jsonpaths,
    remember_moto_lookups,
    retention_without_attributes,
)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's output."""


def _moto_like(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok":', b"true}"]


def _call(app: Timed, **environ: str) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(app(dict(environ), lambda s, _h: status.append(s)))
    return status[0], body


def test_calls_are_timed_per_caller_and_operation_and_cleared_on_post() -> None:
    # GIVEN the middleware around an app answering every call
    app = Timed(_moto_like)

    # WHEN the gateway and the engine call it, and an unnamed client too
    ua = "Boto3/1.40 md/Botocore#1.41 app/{} os/linux"
    for _ in range(3):
        _call(
            app,
            PATH_INFO="/",
            HTTP_USER_AGENT=ua.format("gateway"),
            HTTP_X_AMZ_TARGET="DynamoDB_20120810.PutItem",
        )
    _call(
        app,
        PATH_INFO="/",
        HTTP_USER_AGENT=ua.format("engine"),
        HTTP_X_AMZ_TARGET="AmazonSQS.DeleteMessageBatch",
    )
    answer = _call(app, PATH_INFO="/moto-api/data.json", REQUEST_METHOD="GET")
    status, body = _call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="GET")

    # THEN the answers pass through whole and the figures say who called what how often
    assert answer == ("200 OK", b'{"ok":true}')
    calls = {(c["caller"], c["operation"]): c for c in json.loads(body)["calls"]}
    assert status == "200 OK"
    assert calls[("gateway", "DynamoDB_20120810.PutItem")]["count"] == 3
    assert calls[("engine", "AmazonSQS.DeleteMessageBatch")]["count"] == 1
    assert calls[("other", "GET /moto-api/data.json")]["count"] == 1
    assert all(c["p50_ms"] <= c["p99_ms"] for c in calls.values())

    # AND a POST clears them
    _call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="POST")
    assert json.loads(_call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="GET")[1])["calls"] == []


def test_jsonpath_expressions_are_parsed_once_and_still_find_the_same() -> None:
    # GIVEN the emulator's JSONPath memo (moto's EventBridge parses per event without it)
    module: Any = ext
    remember_jsonpaths()
    remember_jsonpaths()  # a second call must not wrap the memo again

    # WHEN the same expression is parsed twice and used
    first, second = module.parse("$.detail.symbol"), module.parse("$.detail.symbol")

    # THEN it is one parsed object, and it finds what a fresh parse finds
    assert first is second
    assert [m.value for m in first.find({"detail": {"symbol": "AAPL"}})] == ["AAPL"]
    assert module.parse.__wrapped__("$.detail.symbol") is not first


def test_dynamodb_calls_are_relayed_to_their_own_emulator_and_figures_merged() -> None:
    # GIVEN a DynamoDB emulator serving on a loopback port, and the main one relaying to it
    upstream = Timed(_moto_like)
    server = make_server("127.0.0.1", 0, upstream, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen: list[str] = []

    def main_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(environ["HTTP_X_AMZ_TARGET"])
        start_response("200 OK", [])
        return [b"{}"]

    main = Timed(main_app, dynamodb=Forward(f"http://127.0.0.1:{server.server_port}"))
    body = b'{"TableName":"t"}'
    try:
        # WHEN a DynamoDB call and an SQS call reach the main emulator
        relayed = _call(
            main,
            PATH_INFO="/",
            REQUEST_METHOD="POST",
            CONTENT_LENGTH=str(len(body)),
            CONTENT_TYPE="application/x-amz-json-1.0",
            HTTP_X_AMZ_TARGET="DynamoDB_20120810.GetItem",
            HTTP_USER_AGENT="Boto3 app/engine",
            **{"wsgi.input": io.BytesIO(body)},  # type: ignore[arg-type]
        )
        _call(main, PATH_INFO="/", HTTP_X_AMZ_TARGET="AmazonSQS.ReceiveMessage")
        merged = json.loads(_call(main, PATH_INFO=STATS_PATH, REQUEST_METHOD="GET")[1])
    finally:
        server.shutdown()

    # THEN DynamoDB's answer came from its emulator, SQS stayed, and both are in the figures
    assert relayed == ("200 OK", b'{"ok":true}')
    assert seen == ["AmazonSQS.ReceiveMessage"]
    calls = {(c["caller"], c["operation"]) for c in merged["calls"]}
    assert calls == {
        ("engine", "DynamoDB_20120810.GetItem"),
        ("other", "AmazonSQS.ReceiveMessage"),
    }


def test_moto_lookups_are_made_once_and_answer_as_before() -> None:
    # GIVEN moto's per-request lookups, answered once before the memo
    from moto import backends as moto_backends
    from moto.core import responses as moto_responses
    from moto.dynamodb.responses import DynamoHandler

    backends: Any = moto_backends
    responses: Any = moto_responses
    modules_before = list(backends.list_of_moto_modules())
    names_before = responses.method_names_from_class(DynamoHandler)

    # WHEN the emulator remembers them (twice: a second call must not wrap again)
    remember_moto_lookups()
    remember_moto_lookups()

    # THEN the answers are the same, and the method list is one object, not rebuilt per call
    assert list(backends.list_of_moto_modules()) == modules_before
    assert "dynamodb" in modules_before
    assert responses.method_names_from_class(DynamoHandler) == names_before
    assert responses.method_names_from_class(DynamoHandler) is responses.method_names_from_class(
        DynamoHandler
    )
    assert "put_item" in names_before


_KEYS = st.sampled_from(["a", "b", "c", "d"])
_ITEMS = st.dictionaries(
    st.tuples(_KEYS, st.text("0123456789", min_size=1, max_size=3)),
    st.tuples(st.one_of(st.none(), _KEYS), st.integers(0, 9)),
    max_size=30,
)


def _key_schema(hash_name: str, range_name: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": hash_name, "KeyType": "HASH"},
        {"AttributeName": range_name, "KeyType": "RANGE"},
    ]


def _all_pages(client: Any, limit: int, **query: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    start: dict[str, Any] | None = None
    while True:
        page = client.query(
            TableName="t", Limit=limit, **query, **({"ExclusiveStartKey": start} if start else {})
        )
        found += [(i["pk"]["S"], i["sk"]["S"]) for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return found


@settings(max_examples=15, deadline=None)
@given(items=_ITEMS, wanted=_KEYS, limit=st.integers(1, 7), forward=st.booleans())
def test_a_query_reads_one_partition_and_answers_as_moto_does(
    items: dict[tuple[str, str], tuple[str | None, int]], wanted: str, limit: int, forward: bool
) -> None:
    # GIVEN the emulator's query patch and a table with a sparse index, random items
    query_one_partition()
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=_key_schema("pk", "sk"),
            AttributeDefinitions=[
                {"AttributeName": n, "AttributeType": "S" if n != "gk_n" else "N"}
                for n in ("pk", "sk", "gk", "gk_n")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_group",
                    "KeySchema": _key_schema("gk", "gk_n"),
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for (pk, sk), (gk, n) in items.items():
            extra = {"gk": {"S": gk}, "gk_n": {"N": str(n)}} if gk else {}
            client.put_item(TableName="t", Item={"pk": {"S": pk}, "sk": {"S": sk}, **extra})

        # WHEN one partition and one index key are queried, page by page, both ways
        by_table = _all_pages(
            client,
            limit,
            KeyConditionExpression="pk = :k",
            ExpressionAttributeValues={":k": {"S": wanted}},
            ScanIndexForward=forward,
        )
        by_index = _all_pages(
            client,
            limit,
            IndexName="by_group",
            KeyConditionExpression="gk = :k",
            ExpressionAttributeValues={":k": {"S": wanted}},
            ScanIndexForward=forward,
        )
        scanned = client.scan(TableName="t")["Items"]

    # THEN the answers are DynamoDB's: the partition in range-key order, the index in
    # index-key order (then primary key), each reversed when asked; a scan still sees all
    partition = sorted(k for k in items if k[0] == wanted)
    assert by_table == (partition if forward else partition[::-1])
    indexed = sorted((n, k) for k, (gk, n) in items.items() if gk == wanted)
    expected = [k for _, k in indexed]
    assert by_index == (expected if forward else expected[::-1])
    assert len(scanned) == len(items)


def test_received_messages_are_checked_for_retention_without_counting_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the emulator's retention check, a queue keeping messages 60 s, three messages
    # sent just now and one two minutes ago, and the queue's attributes counted when computed
    from moto.sqs.models import Queue, sqs_backends

    retention_without_attributes()
    computed: list[int] = []
    every_attribute = Queue.attributes.fget  # type: ignore[attr-defined]

    def counted(queue: Any) -> Any:
        computed.append(1)
        return every_attribute(queue)

    with mock_aws():
        sqs: Any = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})[
            "QueueUrl"
        ]
        for body in ("new-1", "new-2", "new-3", "old"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        queue: Any = sqs_backends["123456789012"]["us-east-1"].get_queue("q")
        queue._messages[-1].sent_timestamp -= 120_000
        monkeypatch.setattr(Queue, "attributes", property(counted))

        # WHEN the queue is read
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    # THEN the expired message is not handed out, the others are, and no message cost a
    # pass over the whole queue
    assert sorted(m["Body"] for m in received) == ["new-1", "new-2", "new-3"]
    assert computed == []


class _Overlap:
    """A moto stand-in that records how many calls it answered at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        threading.Event().wait(0.02)
        with self._lock:
            self.now -= 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]


@pytest.mark.parametrize(
    ("target", "concurrent"),
    [
        ("DynamoDB_20120810.TransactWriteItems", False),
        ("DynamoDB_20120810.PutItem", False),
        ("AmazonSQS.ReceiveMessage", True),
    ],
)
def test_dynamodb_calls_are_answered_one_at_a_time_and_the_rest_concurrently(
    target: str, concurrent: bool
) -> None:
    # GIVEN the middleware around an app that notes overlapping calls
    inner = _Overlap()
    app = Timed(inner)

    # WHEN six threads call it at once
    start = threading.Barrier(6)

    def call() -> None:
        start.wait()
        _call(app, PATH_INFO="/", HTTP_X_AMZ_TARGET=target)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # THEN DynamoDB never sees two calls at once (moto's transactions copy the tables while
    # other writes change them), and SQS long polls are not held up behind one another
    assert (inner.most > 1) is concurrent
    assert inner.most <= 6

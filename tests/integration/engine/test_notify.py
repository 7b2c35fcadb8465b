"""Notifications end to end: real HTTP to a local receiver, secrets and SNS in moto.

The dispatcher is built from settings exactly as the engine builds it; channel secrets
hold the receiver's URLs, so what the receiver records is what Telegram, Discord and
Slack would have been sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from kyperian.adapters.notify import NotificationDispatcher, build_dispatcher
from kyperian.adapters.notify.dead_letters import DEAD_PK_PREFIX, DynamoDeadLetters
from kyperian.domain.decisions import Decision
from kyperian.domain.models import Signal
from kyperian.domain.notices import NoticeKind
from kyperian.fusion import FusionRules, fuse
from kyperian.settings import Settings
from tests.integration.engine.conftest import REGION, EngineAws
from tests.integration.engine.receiver import Receiver, http_receiver
from tests.signal_factory import make_signal


@dataclass
class Wired:
    receiver: Receiver
    dispatcher: NotificationDispatcher
    engine_aws: EngineAws
    sns_queue_url: str
    sqs: Any


def _secret(client: Any, name: str, value: dict[str, str]) -> str:
    client.create_secret(Name=name, SecretString=json.dumps(value))
    return name


def _wire(engine_aws: EngineAws, receiver: Receiver, **overrides: Any) -> Wired:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="kyperian-test-notices")["TopicArn"]
    inbox = sqs.create_queue(QueueName="mailbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    settings = Settings(
        environment="test",
        decisions_table=engine_aws.decisions_table,
        notify_telegram_secret_id=_secret(
            secrets, "/kyperian/test/notify/telegram", {"bot_token": "123:ABC", "chat_id": "-42"}
        ),
        notify_discord_secret_id=_secret(
            secrets, "/kyperian/test/notify/discord", {"webhook_url": f"{receiver.url}/discord"}
        ),
        notify_slack_secret_id=_secret(
            secrets, "/kyperian/test/notify/slack", {"webhook_url": f"{receiver.url}/slack"}
        ),
        notify_sns_topic_arn=topic,
        notify_telegram_api_url=receiver.url,
        notify_backoff_seconds=0.01,
        **overrides,
    )
    dispatcher = build_dispatcher(settings)
    dispatcher.start()
    return Wired(receiver, dispatcher, engine_aws, inbox, sqs)


@pytest.fixture
def wired(engine_aws: EngineAws) -> Iterator[Wired]:
    with http_receiver() as receiver:
        made = _wire(engine_aws, receiver)
        try:
            yield made
        finally:
            made.dispatcher.stop()


def _decided(*signals: Signal) -> tuple[Signal, Decision]:
    now = datetime.now(UTC)
    decision = fuse(list(signals), FusionRules(), now, symbol="AAPL", trigger=signals[-1])
    return signals[-1], decision


def _aligned() -> tuple[Signal, Decision]:
    now = datetime.now(UTC)
    return _decided(
        make_signal(timeframe="1D", action="BUY", at=now),
        make_signal(timeframe="4h", action="STRONG_BUY", at=now, price=191.5),
    )


def test_an_actionable_decision_reaches_every_channel(wired: Wired) -> None:
    # GIVEN an actionable buy
    signal, decision = _aligned()
    assert decision.actionable

    # WHEN the processor's observer hands it over
    wired.dispatcher(signal, decision, False)

    # THEN Telegram's Bot API, Discord's and Slack's webhooks each got one message naming it
    received = {r.path: r.body for r in wired.receiver.wait_for(3)}
    assert received["/bot123:ABC/sendMessage"]["chat_id"] == "-42"
    assert received["/bot123:ABC/sendMessage"]["text"].startswith("AAPL: ")
    assert "at 191.5" in received["/discord"]["content"]
    assert received["/discord"]["allowed_mentions"] == {"parse": []}
    assert "size" in received["/slack"]["text"]
    # AND the SNS topic delivered the e-mail text to its subscriber
    mail = _sns_messages(wired)
    assert len(mail) == 1
    assert mail[0]["Subject"].startswith("AAPL: ")
    assert mail[0]["MessageAttributes"]["kind"]["Value"] == NoticeKind.DECISION.value


def test_a_decision_that_waits_is_not_sent_unless_a_channel_asks_for_all(
    engine_aws: EngineAws,
) -> None:
    # GIVEN Slack asks for every decision; the others keep the default (actionable, vetoes...)
    with http_receiver() as receiver:
        made = _wire(
            engine_aws,
            receiver,
            notify_slack_events=frozenset({NoticeKind.DECISION, NoticeKind.DECISION_OTHER}),
        )
        try:
            # WHEN a NEUTRAL decision (no opinion) is made
            signal, decision = _decided(make_signal(timeframe="4h", action="NEUTRAL"))
            assert decision.action.direction == 0
            made.dispatcher(signal, decision, False)
            made.dispatcher.stop()
        finally:
            made.dispatcher.stop()
    # THEN only Slack got it
    assert [r.path for r in receiver.received] == ["/slack"]
    assert _sns_messages(made) == []


def test_a_failing_channel_is_retried_with_backoff_then_delivered(wired: Wired) -> None:
    # GIVEN the chat service answers 500 and 429 before it recovers
    wired.receiver.script[:] = [500, 429]
    signal, decision = _aligned()

    # WHEN one notice goes out to three HTTP channels
    wired.dispatcher(signal, decision, False)
    received = wired.receiver.wait_for(5)

    # THEN 5 requests in all (two refused, retried), every channel delivered, nothing dead
    assert len(received) == 5
    stats = {name: wired.dispatcher.stats(name) for name in wired.dispatcher.channels}
    wired.dispatcher.stop()
    assert sum(s.retried for s in stats.values()) == 2
    assert sum(s.sent for s in stats.values()) == 4
    assert _dead_letters(wired) == {}


def test_a_refused_message_is_dead_lettered_in_the_table_without_retry(wired: Wired) -> None:
    # GIVEN the service refuses with 403 (a revoked token): the first request of three
    wired.receiver.script[:] = [403]
    signal, decision = _aligned()

    # WHEN the notice is sent and the senders stop
    wired.dispatcher(signal, decision, False)
    wired.receiver.wait_for(3)
    wired.dispatcher.stop()

    # THEN exactly one channel dead-lettered it, once, with the reason, in the Decisions table
    dead = _dead_letters(wired)
    assert len(dead) == 1
    ((channel, items),) = dead.items()
    assert channel in {"telegram", "discord", "slack"}
    assert len(items) == 1
    assert "HTTP 403" in items[0]["reason"]["S"]
    assert items[0]["attempts"]["N"] == "1"
    assert json.loads(items[0]["notice"]["S"])["symbol"] == "AAPL"
    assert int(items[0]["ttl"]["N"]) > datetime.now(UTC).timestamp()
    assert "123:ABC" not in json.dumps(items)


def test_a_channel_that_keeps_failing_is_dead_lettered_after_its_attempts(wired: Wired) -> None:
    # GIVEN every answer is 503 for longer than the attempts allow (4 by default, per channel)
    wired.receiver.script[:] = [503] * 12
    signal, decision = _aligned()
    wired.dispatcher(signal, decision, False)
    wired.receiver.wait_for(12)
    wired.dispatcher.stop()
    # THEN each HTTP channel tried 4 times and kept the notice as a dead letter
    dead = _dead_letters(wired)
    assert sorted(dead) == ["discord", "slack", "telegram"]
    assert all(items[0]["attempts"]["N"] == "4" for items in dead.values())


def test_a_slow_channel_never_holds_up_the_caller(wired: Wired) -> None:
    # GIVEN a chat service that does not answer until released
    wired.receiver.hold.clear()
    signal, decision = _aligned()

    # WHEN many decisions are handed over while it hangs
    for _ in range(20):
        wired.dispatcher(signal, decision, False)

    # THEN every hand-over returned while nothing had been answered yet; then all arrive
    assert wired.receiver.received == []
    wired.receiver.hold.set()
    assert len(wired.receiver.wait_for(60, timeout=30)) == 60


def test_a_queue_overflow_is_logged_as_dead_and_counted(engine_aws: EngineAws) -> None:
    # GIVEN a one-notice queue per channel and a hung chat service
    with http_receiver() as receiver:
        receiver.hold.clear()
        made = _wire(engine_aws, receiver, notify_queue_size=1)
        try:
            signal, decision = _aligned()
            # WHEN five notices arrive at once
            for _ in range(5):
                made.dispatcher(signal, decision, False)
            # THEN beyond what the sender holds and the queue keeps, they are counted as dropped
            dropped = made.dispatcher.stats("slack").dropped
            assert 3 <= dropped <= 4
        finally:
            receiver.hold.set()
            made.dispatcher.stop()


def test_dead_letters_can_be_listed_for_an_operator(engine_aws: EngineAws) -> None:
    # GIVEN two dead letters for Slack
    store = DynamoDeadLetters(engine_aws.decisions_table, engine_aws.dynamodb)
    from kyperian.domain.notices import decision_notice

    signal, decision = _aligned()
    notice = decision_notice(signal, decision)
    store.record("slack", notice, "first", 4)
    store.record("slack", notice, "second", 4)
    # WHEN listed  THEN newest first, with the notice and reason
    assert [reason for _, reason in store.recent("slack")] == ["second", "first"]


def _sns_messages(wired: Wired) -> list[dict[str, Any]]:
    answer = wired.sqs.receive_message(
        QueueUrl=wired.sns_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def _dead_letters(wired: Wired) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for channel in ("telegram", "discord", "slack", "sns"):
        items = wired.engine_aws.dynamodb.query(
            TableName=wired.engine_aws.decisions_table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{DEAD_PK_PREFIX}{channel}"}},
        )["Items"]
        if items:
            found[channel] = items
    return found

"""Alarms forwarded to the chat channels: CloudWatch and DynamoDB in moto, real HTTP out.

Alarm states are driven with ``set_alarm_state`` as CloudWatch would change them; two
``AlarmWatch`` objects over the same table stand for two engine tasks. What the local
receiver records is what Slack would have been sent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from kyperian.adapters.aws.alarms import CloudWatchAlarms, DynamoAlarmStates
from kyperian.adapters.notify import NotificationDispatcher, build_dispatcher
from kyperian.domain.notices import NoticeKind
from kyperian.engine.alarm_watch import AlarmWatch
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices, alarm_watch
from kyperian.settings import Settings
from tests.engine_auth import AUTH_HEADERS, ENGINE_TOKEN
from tests.integration.engine.conftest import REGION, EngineAws
from tests.integration.engine.receiver import Receiver, http_receiver
from tests.unit.engine.conftest import build_engine

ALARM = "kyperian-test-high-latency"


@dataclass
class Stack:
    cloudwatch: Any
    settings: Settings
    dispatcher: NotificationDispatcher
    receiver: Receiver

    def watch(self, clock: datetime | None = None) -> AlarmWatch:
        """One engine task's watcher, wired as ``build_services`` wires it."""
        watch = alarm_watch(self.settings, self.dispatcher)
        assert watch is not None
        if clock is not None:
            watch._clock = lambda: clock
        return watch

    def set_state(self, state: str, name: str = ALARM) -> None:
        self.cloudwatch.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=f"Threshold Crossed: went {state}"
        )

    def messages(self, expected: int) -> list[str]:
        """The Slack texts, after the senders delivered what was queued."""
        self.receiver.wait_for(expected, timeout=5)
        return [r.body["text"] for r in self.receiver.received]


def _alarm(cloudwatch: Any, name: str) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"Webhook p99 latency is high. Runbook: https://runbooks.example/{name}.md",
        Namespace="AWS/ApiGateway",
        MetricName="Latency",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=100,
        ComparisonOperator="GreaterThanThreshold",
    )


@pytest.fixture
def stack(engine_aws: EngineAws) -> Iterator[Stack]:
    """GIVEN the stack's alarm (OK), another environment's alarm, Slack on a local receiver."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for name in (ALARM, "kyperian-staging-high-latency"):
        _alarm(cloudwatch, name)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    with http_receiver() as receiver:
        secrets.create_secret(
            Name="/kyperian/test/notify/slack",
            SecretString=json.dumps({"webhook_url": f"{receiver.url}/slack"}),
        )
        settings = Settings(
            environment="test",
            decisions_table=engine_aws.decisions_table,
            notify_slack_secret_id="/kyperian/test/notify/slack",
            notify_backoff_seconds=0.01,
        )
        dispatcher = build_dispatcher(settings)
        dispatcher.start()
        try:
            yield Stack(cloudwatch, settings, dispatcher, receiver)
        finally:
            dispatcher.stop()


def test_each_change_into_and_out_of_alarm_is_told_once_by_one_of_two_tasks(stack: Stack) -> None:
    first, second = stack.watch(), stack.watch()
    # GIVEN both tasks polled once while the alarm was OK (a first sighting: nothing to tell)
    assert first.poll_once() + second.poll_once() == []

    # WHEN it goes into ALARM and both tasks poll
    stack.set_state("ALARM")
    told = first.poll_once() + second.poll_once()
    # THEN exactly one notice of kind alarm, naming the alarm, the reason and the runbook
    assert [n.kind for n in told] == [NoticeKind.ALARM]
    assert told[0].title == f"ALARM: {ALARM} (us-east-1)"

    # WHEN it returns to OK and both poll again (the other task first, this time)
    stack.set_state("OK")
    told += second.poll_once() + first.poll_once()

    # THEN one "resolved" notice; Slack received exactly the two messages
    assert [n.title for n in told] == [
        f"ALARM: {ALARM} (us-east-1)",
        f"resolved: {ALARM} (us-east-1) is OK",
    ]
    texts = stack.messages(2)
    assert len(texts) == 2
    assert texts[0].startswith(f"*ALARM: {ALARM} (us-east-1)*\n")
    assert "was OK" in texts[0]
    assert "Threshold Crossed: went ALARM" in texts[0]
    assert f"https://runbooks.example/{ALARM}.md" in texts[0]
    assert "was ALARM" in texts[1]
    # AND the other environment's alarm was never read
    assert all("kyperian-staging" not in text for text in texts)
    assert first.status.alarming == ()
    assert first.status.last_poll is not None


def test_a_restarted_task_does_not_repeat_old_changes(stack: Stack) -> None:
    # GIVEN a change into ALARM already told by a task
    stack.watch().poll_once()
    stack.set_state("ALARM")
    assert len(stack.watch().poll_once()) == 1
    # WHEN a task starts afresh (a deploy, a scale-out) and polls
    restarted = stack.watch()
    told = restarted.poll_once()
    # THEN it tells nothing, and knows the alarm is in ALARM
    assert told == []
    assert restarted.status.alarming == (ALARM,)


def test_an_alarm_first_seen_in_alarm_is_told_only_if_it_is_recent(stack: Stack) -> None:
    # GIVEN an alarm in ALARM that no task has recorded yet (a first deploy of the watcher)
    stack.set_state("ALARM")
    # WHEN a task polls two hours later, then another at once
    later = datetime.now(UTC) + timedelta(hours=2)
    old_news = stack.watch(clock=later).poll_once() + stack.watch().poll_once()
    # THEN it is old news: recorded, told by nobody
    assert old_news == []

    # GIVEN another alarm that has just gone into ALARM, first seen now
    _alarm(stack.cloudwatch, "kyperian-test-dlq-not-empty")
    stack.set_state("ALARM", "kyperian-test-dlq-not-empty")
    # WHEN two tasks poll
    told = stack.watch().poll_once() + stack.watch().poll_once()
    # THEN it is told once, as first seen
    assert [n.title for n in told] == ["ALARM: kyperian-test-dlq-not-empty (us-east-1)"]
    assert "first seen" in told[0].text


def test_ok_and_insufficient_data_back_and_forth_is_not_news(stack: Stack) -> None:
    watch = stack.watch()
    watch.poll_once()
    # WHEN the metric goes quiet and comes back, without ever alarming
    stack.set_state("INSUFFICIENT_DATA")
    quiet = watch.poll_once()
    stack.set_state("OK")
    back = watch.poll_once()
    # THEN nothing is told
    assert quiet + back == []
    # AND leaving ALARM for INSUFFICIENT_DATA is (the alarm no longer fires)
    stack.set_state("ALARM")
    watch.poll_once()
    stack.set_state("INSUFFICIENT_DATA")
    assert [n.title for n in watch.poll_once()] == [
        f"resolved: {ALARM} (us-east-1) is INSUFFICIENT DATA"
    ]


def test_the_watcher_is_off_without_a_channel_or_with_a_zero_interval(
    stack: Stack,
) -> None:
    # GIVEN no channel at all, or the interval set to 0
    silent = build_dispatcher(Settings(environment="test"))
    off = stack.settings.model_copy(update={"alarm_watch_seconds": 0})
    # THEN there is no watcher (no CloudWatch call for nobody)
    assert alarm_watch(stack.settings, silent) is None
    assert alarm_watch(off, stack.dispatcher) is None


def test_a_failing_poll_is_shown_and_the_next_one_catches_up(
    stack: Stack, engine_aws: EngineAws
) -> None:
    # GIVEN the table the watcher records in is unreachable (deleted)
    watch = stack.watch()
    watch.poll_once()
    stack.set_state("ALARM")
    engine_aws.dynamodb.delete_table(TableName=engine_aws.decisions_table)
    # WHEN the thread polls
    watch.start()
    try:
        _wait(lambda: watch.status.problem is not None)
    finally:
        watch.stop()
    # THEN the failure is on the status (the health panel), with the last good poll kept
    assert watch.status.problem is not None
    assert "alarm state" in watch.status.problem
    assert watch.status.last_poll is not None


def _wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not condition() and datetime.now(UTC) < deadline:
        time.sleep(0.02)


def test_a_slow_task_reporting_an_older_state_changes_nothing(stack: Stack) -> None:
    # GIVEN a task read the alarm while OK, then another task recorded its change into ALARM
    slow = stack.watch()
    (stale,) = slow._alarms.read()
    stack.set_state("ALARM")
    assert len(stack.watch().poll_once()) == 1
    # WHEN the slow task gets round to claiming what it read
    claimed = slow._states.claim(stale)
    # THEN the older state is refused, so no false "resolved" goes out, and ALARM stays recorded
    assert claimed is None
    assert stack.watch().poll_once() == []
    assert len(stack.messages(1)) == 1


def test_the_health_panel_shows_the_last_poll_and_what_is_alarming(stack: Stack) -> None:
    # GIVEN a watcher that polled while the alarm was in ALARM
    stack.set_state("ALARM")
    watch = stack.watch()
    watch.poll_once()
    engine = build_engine()
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN),
        rules=engine.processor.rules, cache=engine.cache, decisions=engine.decisions,
        history=engine.history, circuit=engine.circuit, broker=engine.broker,
        processor=engine.processor, worker=None, notifier=stack.dispatcher, alarms=watch,
    )  # fmt: skip
    # WHEN the engine starts (its lifespan starts the watcher's thread) and the panel is read
    with TestClient(create_app(services), headers=AUTH_HEADERS) as client:
        html = client.get("/ui/panels/health", headers={"HX-Request": "true"}).text
        started = watch._thread is not None and watch._thread.is_alive()
    # THEN it names the alarm in ALARM and when the watcher last polled
    assert started
    assert f"in ALARM: {ALARM}" in html
    assert re.search(r"polled \d\d:\d\d:\d\d UTC, every 60 s", html)


def test_the_dr_regions_alarms_of_the_same_name_are_told_apart(
    stack: Stack, engine_aws: EngineAws
) -> None:
    # GIVEN the DR region's alarm of the same name, its watcher on the same (global) table
    dr_cloudwatch = boto3.client("cloudwatch", region_name="us-west-2")
    _alarm(dr_cloudwatch, ALARM)
    dr = AlarmWatch(
        CloudWatchAlarms(dr_cloudwatch, "kyperian-test-"),
        DynamoAlarmStates(engine_aws.decisions_table, engine_aws.dynamodb, "us-west-2"),
        stack.dispatcher.submit,
        interval=60,
    )
    primary = stack.watch()
    primary.poll_once()
    dr.poll_once()
    # WHEN the primary's alarm fires, then the DR region's, each region's tasks polling
    stack.set_state("ALARM")
    told = primary.poll_once() + dr.poll_once()
    dr_cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="DR too")
    told += dr.poll_once() + primary.poll_once()
    # THEN each change is told once, naming its region; neither region's record hid the other's
    assert [n.title for n in told] == [f"ALARM: {ALARM} (us-east-1)", f"ALARM: {ALARM} (us-west-2)"]


def test_a_task_writes_once_per_change_not_once_per_poll(
    stack: Stack, engine_aws: EngineAws
) -> None:
    # GIVEN a task that has polled once (recording the alarm)
    watch = stack.watch()
    watch.poll_once()
    stored = _stored(engine_aws)
    # WHEN the item is removed behind its back and it polls again with nothing changed
    engine_aws.dynamodb.delete_item(TableName=engine_aws.decisions_table, Key=stored)
    watch.poll_once()
    # THEN it did not write again (it remembers the change it claimed)
    assert _stored(engine_aws, missing_ok=True) is None
    # AND a new change is written (and told) at the next poll
    stack.set_state("ALARM")
    assert len(watch.poll_once()) == 1
    assert _stored(engine_aws) is not None


def _stored(engine_aws: EngineAws, missing_ok: bool = False) -> Any:
    key = {"PK": {"S": f"ALARM-STATE#us-east-1#{ALARM}"}, "SK": {"S": "state"}}
    item = engine_aws.dynamodb.get_item(TableName=engine_aws.decisions_table, Key=key).get("Item")
    if item is None:
        assert missing_ok
        return None
    return key

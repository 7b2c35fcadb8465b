"""The SQS work queue against moto: receive counts, partial deletes, release, redrive to the DLQ."""

from __future__ import annotations

import pytest

from kyperian.adapters.aws.sqs import SqsWorkQueue
from kyperian.domain.errors import OperationalError
from tests.integration.engine.conftest import EngineAws

pytestmark = pytest.mark.integration


def _count(engine_aws: EngineAws, url: str) -> int:
    attributes = engine_aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_receive_delete_and_release(engine_aws: EngineAws) -> None:
    # GIVEN three messages
    queue = SqsWorkQueue(engine_aws.queue_url, engine_aws.sqs)
    for index in range(3):
        engine_aws.sqs.send_message(QueueUrl=engine_aws.queue_url, MessageBody=f"body-{index}")

    # WHEN received, one deleted and the others released
    received = queue.receive(10, wait_seconds=0, visibility_seconds=30)
    assert [m.receive_count for m in received] == [1, 1, 1]
    assert queue.delete(received[:1]) == []
    queue.release(received[1:])

    # THEN the two released ones are visible again at once, received a second time
    again = queue.receive(10, wait_seconds=0, visibility_seconds=30)
    assert sorted(m.body for m in again) == sorted(m.body for m in received[1:])
    assert {m.receive_count for m in again} == {2}


def test_a_message_never_deleted_moves_to_the_dlq_after_max_receives(engine_aws: EngineAws) -> None:
    # GIVEN a poison message the worker never deletes
    queue = SqsWorkQueue(engine_aws.queue_url, engine_aws.sqs)
    engine_aws.sqs.send_message(QueueUrl=engine_aws.queue_url, MessageBody="{not json")

    # WHEN it is received as often as the redrive policy allows, and once more
    counts = [
        m.receive_count for _ in range(engine_aws.max_receive_count) for m in queue.receive(1, 0, 0)
    ]
    last = queue.receive(1, 0, 0)

    # THEN it was delivered maxReceiveCount times, then moved to the dead-letter queue
    assert counts == list(range(1, engine_aws.max_receive_count + 1))
    assert last == []
    assert _count(engine_aws, engine_aws.dlq_url) == 1


def test_an_unknown_queue_is_an_operational_error(engine_aws: EngineAws) -> None:
    # GIVEN a wrong queue url  WHEN used  THEN the error says a human must fix the configuration
    queue = SqsWorkQueue(engine_aws.queue_url + "-missing", engine_aws.sqs)
    with pytest.raises(OperationalError):
        queue.check()

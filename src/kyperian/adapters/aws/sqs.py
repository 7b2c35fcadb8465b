"""The engine's work queue on SQS: long-poll, delete what succeeded, release on shutdown.

The queue is fed by the EventBridge rule; its redrive policy moves a message that keeps
failing to the dead-letter queue after ``maxReceiveCount`` receives, so the worker never
deletes a message it could not process. The client's read timeout must exceed the
long-poll wait (see ``kyperian.engine.services``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify
from kyperian.domain.engine_ports import QueueMessage, WorkQueue

_MAX_BATCH: Final = 10  # the SQS limit for receive, delete and change-visibility batches


def _message(raw: dict[str, Any]) -> QueueMessage:
    attributes = raw.get("Attributes", {})
    return QueueMessage(
        message_id=raw["MessageId"],
        receipt=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
    )


def _chunks(messages: Sequence[QueueMessage]) -> list[Sequence[QueueMessage]]:
    return [messages[i : i + _MAX_BATCH] for i in range(0, len(messages), _MAX_BATCH)]


class SqsWorkQueue(WorkQueue):
    """``WorkQueue`` on one SQS queue; pass a client whose read timeout outlasts the wait."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self._client = client

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueueMessage]:
        try:
            response = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(max_messages, _MAX_BATCH),
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "receiving signals") from exc
        return [_message(raw) for raw in response.get("Messages", [])]

    def delete(self, messages: Sequence[QueueMessage]) -> list[str]:
        failed: list[str] = []
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            try:
                response = self._client.delete_message_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "deleting processed signals") from exc
            failed += [chunk[int(f["Id"])].message_id for f in response.get("Failed", [])]
        return failed

    def release(self, messages: Sequence[QueueMessage]) -> None:
        for chunk in _chunks(messages):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ]
            try:
                self._client.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "releasing signals") from exc

    def check(self) -> None:
        try:
            self._client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the signal queue") from exc

"""E-mail (and SMS, or anything else subscribed) through an SNS topic.

The topic ARN is not a secret, so it is a setting; subscribers confirm by e-mail.
"""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify
from kyperian.adapters.notify.channel import Channel, ChannelFilter
from kyperian.domain.notices import Notice


class SnsChannel(Channel):
    name: ClassVar[str] = "sns"

    def __init__(self, notice_filter: ChannelFilter, client: Any, topic_arn: str) -> None:
        super().__init__(notice_filter)
        self._client = client
        self._topic_arn = topic_arn

    def send(self, notice: Notice) -> None:
        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                Subject=notice.title,
                Message=f"{notice.title}\n\n{notice.text}\n\n{notice.at.isoformat()}",
                MessageAttributes={
                    "kind": {"DataType": "String", "StringValue": notice.kind.value},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "publishing to SNS") from exc

"""Slack through an incoming webhook (a Slack app with Incoming Webhooks enabled).

Secret (JSON, in Secrets Manager): ``{"webhook_url": "https://hooks.slack.com/services/..."}``.
"""

from __future__ import annotations

from typing import ClassVar

from kyperian.adapters.notify.channel import Channel, ChannelFilter, post_json, secret_fields
from kyperian.domain.notices import Notice
from kyperian.domain.ports import SecretSource


class SlackChannel(Channel):
    name: ClassVar[str] = "slack"

    def __init__(self, notice_filter: ChannelFilter, secrets: SecretSource, secret_id: str) -> None:
        super().__init__(notice_filter)
        self._secrets = secrets
        self._secret_id = secret_id

    def send(self, notice: Notice) -> None:
        url = secret_fields(self._secrets, self._secret_id, ("webhook_url",))["webhook_url"]
        post_json(url, {"text": f"*{notice.title}*\n{notice.text}"}, "Slack")

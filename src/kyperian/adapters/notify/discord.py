"""Discord through an incoming webhook (Server settings -> Integrations -> Webhooks).

Secret (JSON, in Secrets Manager): ``{"webhook_url": "https://discord.com/api/webhooks/..."}``.
"""

from __future__ import annotations

from typing import ClassVar

from kyperian.adapters.notify.channel import Channel, ChannelFilter, post_json, secret_fields
from kyperian.domain.notices import Notice
from kyperian.domain.ports import SecretSource


class DiscordChannel(Channel):
    name: ClassVar[str] = "discord"

    def __init__(self, notice_filter: ChannelFilter, secrets: SecretSource, secret_id: str) -> None:
        super().__init__(notice_filter)
        self._secrets = secrets
        self._secret_id = secret_id

    def send(self, notice: Notice) -> None:
        url = secret_fields(self._secrets, self._secret_id, ("webhook_url",))["webhook_url"]
        post_json(
            url,
            {
                "username": "Kyperian",
                "content": f"**{notice.title}**\n{notice.text}",
                "allowed_mentions": {"parse": []},
            },
            "Discord",
        )

"""Telegram through the Bot API: ``sendMessage`` to one chat.

Secret (JSON, in Secrets Manager): ``{"bot_token": "123:ABC...", "chat_id": "-100..."}``.
The token is part of the URL, so it never appears in an error or a log line.
"""

from __future__ import annotations

from typing import ClassVar, Final

from kyperian.adapters.notify.channel import Channel, ChannelFilter, post_json, secret_fields
from kyperian.domain.notices import Notice
from kyperian.domain.ports import SecretSource

API_URL: Final = "https://api.telegram.org"


class TelegramChannel(Channel):
    name: ClassVar[str] = "telegram"

    def __init__(
        self,
        notice_filter: ChannelFilter,
        secrets: SecretSource,
        secret_id: str,
        api_url: str = API_URL,
    ) -> None:
        super().__init__(notice_filter)
        self._secrets = secrets
        self._secret_id = secret_id
        self._api_url = api_url.rstrip("/")

    def send(self, notice: Notice) -> None:
        fields = secret_fields(self._secrets, self._secret_id, ("bot_token", "chat_id"))
        post_json(
            f"{self._api_url}/bot{fields['bot_token']}/sendMessage",
            {
                "chat_id": fields["chat_id"],
                "text": f"{notice.title}\n{notice.text}",
                "disable_web_page_preview": True,
            },
            "Telegram",
        )

"""Builds the dispatcher from settings: a channel for each one configured, none otherwise."""

from __future__ import annotations

from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.secrets import CachedSecrets
from kyperian.adapters.notify.channel import Channel, ChannelFilter
from kyperian.adapters.notify.dead_letters import DeadLetters, DynamoDeadLetters
from kyperian.adapters.notify.discord import DiscordChannel
from kyperian.adapters.notify.dispatcher import NotificationDispatcher
from kyperian.adapters.notify.slack import SlackChannel
from kyperian.adapters.notify.sns import SnsChannel
from kyperian.adapters.notify.telegram import TelegramChannel
from kyperian.domain.notices import NoticeKind
from kyperian.domain.ports import SecretSource
from kyperian.settings import Settings


def build_channels(settings: Settings, secrets: SecretSource) -> list[Channel]:
    """The channels whose secret id or topic is set, each with its filter."""
    symbols = frozenset(s.upper() for s in settings.notify_symbols)

    def only(kinds: frozenset[NoticeKind]) -> ChannelFilter:
        return ChannelFilter(kinds=kinds, symbols=symbols)

    channels: list[Channel] = []
    if settings.notify_telegram_secret_id:
        channels.append(
            TelegramChannel(
                only(settings.notify_telegram_events),
                secrets,
                settings.notify_telegram_secret_id,
                settings.notify_telegram_api_url,
            )
        )
    if settings.notify_discord_secret_id:
        channels.append(
            DiscordChannel(
                only(settings.notify_discord_events), secrets, settings.notify_discord_secret_id
            )
        )
    if settings.notify_slack_secret_id:
        channels.append(
            SlackChannel(
                only(settings.notify_slack_events), secrets, settings.notify_slack_secret_id
            )
        )
    if settings.notify_sns_topic_arn:
        channels.append(
            SnsChannel(
                only(settings.notify_sns_events),
                make_client("sns", settings),
                settings.notify_sns_topic_arn,
            )
        )
    return channels


def build_dispatcher(
    settings: Settings, dead_letters: DeadLetters | None = None
) -> NotificationDispatcher:
    """The dispatcher (not started) over the configured channels; maybe with none at all."""
    secrets = CachedSecrets(
        make_client("secretsmanager", settings), settings.secret_max_age_seconds
    )
    dead = dead_letters or DynamoDeadLetters(
        settings.decisions_table, make_client("dynamodb", settings), settings.decision_ttl_days
    )
    return NotificationDispatcher(
        build_channels(settings, secrets),
        dead,
        queue_size=settings.notify_queue_size,
        attempts=settings.notify_attempts,
        backoff_seconds=settings.notify_backoff_seconds,
    )

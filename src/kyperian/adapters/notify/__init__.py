"""Notifications to Telegram, Discord, Slack and SNS (e-mail), sent off the decision path.

``build_dispatcher(settings)`` wires the channels the settings configure; the engine
passes the dispatcher to the processor as a ``DecisionObserver`` and other producers call
``submit(Notice(...))``. Setup of each channel: docs/cockpit.md.
"""

from kyperian.adapters.notify.channel import Channel, ChannelFilter
from kyperian.adapters.notify.dead_letters import DeadLetters, DynamoDeadLetters
from kyperian.adapters.notify.dispatcher import NotificationDispatcher
from kyperian.adapters.notify.wiring import build_dispatcher

__all__ = [
    "Channel",
    "ChannelFilter",
    "DeadLetters",
    "DynamoDeadLetters",
    "NotificationDispatcher",
    "build_dispatcher",
]

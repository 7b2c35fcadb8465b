"""Notices: what the engine tells a trader through Telegram, Discord, Slack or email.

A ``Notice`` is a short, channel-neutral message with a kind, so each channel can be
filtered by kind and symbol. Decisions are turned into notices here, in words (vetoes
spelled out), with no I/O; the dispatcher in ``kyperian.adapters.notify`` delivers them
off the decision path. Order, halt and reconciliation notices are built by the execution
code with ``Notice(...)`` and handed to the same dispatcher; alarm notices by the engine's
alarm watcher, with the rule of which alarm changes are worth a message here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from kyperian.domain.decisions import Decision, VetoCode
from kyperian.domain.models import IsoTime, Signal


class NoticeKind(StrEnum):
    """What happened; channels subscribe to kinds (``KYPERIAN_NOTIFY_<CHANNEL>_EVENTS``)."""

    DECISION = "decision"
    """An actionable decision: unvetoed BUY/SELL with a size."""
    DECISION_OTHER = "decision_other"
    """Any other decision (WAIT, NEUTRAL): noisy, off by default."""
    VETO = "veto"
    """A vetoed decision, except for "no anchor" alone (an entry-timeframe alert with no
    4h/1D opinion yet: the engine simply waits, which would be noise)."""
    ORDER_PENDING_APPROVAL = "order_pending_approval"
    """An order waits for a person to approve or reject it in the cockpit."""
    ORDER_SUBMITTED = "order_submitted"
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    HALT = "halt"
    """The kill switch was thrown (or released)."""
    RECONCILIATION_MISMATCH = "reconciliation_mismatch"
    ALARM = "alarm"
    """A ``kyperian-<env>-*`` CloudWatch alarm went into ALARM or left it (the alarm watcher)."""


DEFAULT_KINDS: Final = frozenset(NoticeKind) - {NoticeKind.DECISION_OTHER}
"""Every kind but the non-actionable decisions."""


class Notice(BaseModel):
    """One message to people; ``notice_id`` is stable so a dead letter can be matched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notice_id: str
    kind: NoticeKind
    symbol: str | None = None
    title: str = Field(max_length=100)
    """One line; the e-mail subject (SNS allows 100 characters)."""
    text: str = Field(max_length=1800)
    """A few lines of plain text (fits Discord's 2000 and Telegram's 4096 characters)."""
    at: IsoTime


def notice_id(*parts: str) -> str:
    """Deterministic id from what the notice is about (a decision id, an order id...)."""
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


def decision_kind(decision: Decision) -> NoticeKind:
    """Actionable, vetoed (for a reason other than waiting for an anchor), or anything else."""
    if decision.actionable:
        return NoticeKind.DECISION
    if any(veto.code is not VetoCode.NO_ANCHOR for veto in decision.vetoes):
        return NoticeKind.VETO
    return NoticeKind.DECISION_OTHER


def decision_notice(signal: Signal, decision: Decision) -> Notice:
    """The decision in words: action, score, size, price, trigger and every veto's reason."""
    kind = decision_kind(decision)
    verdict = {
        NoticeKind.DECISION: f"{decision.action.value.replace('_', ' ')}",
        NoticeKind.VETO: f"{decision.action.value.replace('_', ' ')} vetoed",
        NoticeKind.DECISION_OTHER: decision.action.value.replace("_", " "),
    }[kind]
    title = f"{decision.symbol}: {verdict}"
    lines = [
        f"score {decision.score:+.2f}, confidence {decision.confidence:.0%}, "
        f"size {decision.position_size:.2%} of equity",
        f"trigger: {signal.timeframe} {signal.action.value} from {signal.source}"
        + (f" at {signal.price:g}" if signal.price is not None else ""),
    ]
    lines += [f"veto: {veto.reason}" for veto in decision.vetoes]
    return Notice(
        notice_id=notice_id("decision", decision.decision_id),
        kind=kind,
        symbol=decision.symbol,
        title=title[:100],
        text="\n".join(lines)[:1800],
        at=decision.decided_at,
    )


ALARM_STATE: Final = "ALARM"
"""CloudWatch's alarming state; the others are ``OK`` and ``INSUFFICIENT_DATA``."""


def alarm_worth_telling(previous: str | None, current: str, fresh: bool) -> bool:
    """Whether an alarm's new state is news for the trader.

    Entering ALARM and leaving it are; OK <-> INSUFFICIENT_DATA is not (a new alarm's first
    evaluation, a metric that went quiet). ``previous`` None means no state was recorded
    yet (first sighting): only an ALARM that began ``fresh`` (recently) is told, so a
    restart or a first deploy does not replay old states.
    """
    if previous is None:
        return current == ALARM_STATE and fresh
    return previous != current and ALARM_STATE in (previous, current)


def alarm_notice(
    name: str,
    state: str,
    previous: str | None,
    reason: str,
    description: str,
    at: datetime,
    region: str,
) -> Notice:
    """An alarm went into ALARM (``ALARM: <name> (<region>)``) or left it (``resolved: ...``).

    The text carries CloudWatch's reason and the alarm's description, which ends with the
    runbook's link. The region is named because the DR region's alarms have the same names.
    ``notice_id`` is the alarm, its region and the time of its change, so the same change
    always makes the same notice.
    """
    if state == ALARM_STATE:
        title = f"ALARM: {name} ({region})"
    else:
        title = f"resolved: {name} ({region}) is {state.replace('_', ' ')}"
    lines = [f"was {previous.replace('_', ' ')}" if previous else "first seen in this state"]
    lines += [line for line in (reason.strip(), description.strip()) if line]
    return Notice(
        notice_id=notice_id("alarm", region, name, at.isoformat()),
        kind=NoticeKind.ALARM,
        title=title[:100],
        text="\n".join(lines)[:1800],
        at=at,
    )

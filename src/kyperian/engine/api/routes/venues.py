"""``GET /broker/{alpaca|ibkr|tda}/status|account|positions|orders``: the live venues.

``/broker/tda`` is served by Schwab (TD Ameritrade's API was shut down after the Schwab
migration). A venue that is not configured answers 503 naming the setting to set, never 404
or 500; a venue that is configured but failing answers 503 with its reason (and
``Retry-After`` when the venue said when). Reads only: orders reach a venue through the
engine's decisions, never through this API.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict

from kyperian.adapters.brokers.venues import ROUTE_NAMES, VenueNotConfigured, Venues
from kyperian.domain.brokers import Account, Broker, Order, Position
from kyperian.domain.errors import KyperianError, OperationalError, RateLimited
from kyperian.engine.api.deps import VenuesDep

router = APIRouter(prefix="/broker", tags=["broker"])

_NOTES = {
    "schwab": (
        "Schwab has no paper environment: every order is real, and orders are refused "
        "unless KYPERIAN_SCHWAB_LIVE_ORDERS=true."
    ),
}


class Venue(StrEnum):
    """The route's name of a venue (``tda`` is served by Schwab)."""

    alpaca = "alpaca"
    ibkr = "ibkr"
    tda = "tda"


class VenueStatus(BaseModel):
    """What the engine knows about a live venue right now."""

    model_config = ConfigDict(frozen=True)

    venue: str
    served_by: str
    configured: bool
    connected: bool
    paper: bool
    executing: bool
    """True when this venue receives the engine's decisions (KYPERIAN_BROKER_VENUE)."""
    live_orders: bool
    """Whether an order sent now would reach the venue (Schwab: the live-orders setting)."""
    account: Account | None = None
    problem: str | None = None
    note: str | None = None
    refresh_token_days_left: float | None = None
    """Schwab only: days before a person must log in again."""


def _unavailable(exc: KyperianError) -> HTTPException:
    headers = {"Retry-After": f"{exc.retry_after:.0f}"} if isinstance(exc, RateLimited) else None
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers=headers)


def _broker(venues: Venues, venue: Venue) -> Broker:
    try:
        return venues.get(ROUTE_NAMES[venue.value])
    except VenueNotConfigured as exc:
        raise _unavailable(exc) from None
    except OperationalError as exc:  # a malformed credentials section
        raise _unavailable(exc) from None


@router.get("/{venue}/status", response_model=VenueStatus)
def venue_status(venue: Venue, venues: VenuesDep) -> VenueStatus:
    broker = _broker(venues, venue)
    name = ROUTE_NAMES[venue.value]
    account: Account | None = None
    problem: str | None = None
    try:
        broker.check()
        account = broker.account()
    except KyperianError as exc:
        problem = str(exc)
    days = getattr(broker, "token_days_left", None)
    live_orders = bool(getattr(getattr(broker, "config", None), "live_orders", True))
    return VenueStatus(
        venue=venue.value,
        served_by=name,
        configured=True,
        connected=problem is None,
        paper=broker.caps.paper,
        executing=venues.settings.broker_venue == name,
        live_orders=live_orders,
        account=account,
        problem=problem,
        note=_NOTES.get(name),
        refresh_token_days_left=_days(days),
    )


def _days(read: object) -> float | None:
    if not callable(read):
        return None
    try:
        return round(float(read()), 2)
    except KyperianError:
        return None


@router.get("/{venue}/account", response_model=Account)
def venue_account(venue: Venue, venues: VenuesDep) -> Account:
    try:
        return _broker(venues, venue).account()
    except KyperianError as exc:
        raise _unavailable(exc) from None


@router.get("/{venue}/positions", response_model=list[Position])
def venue_positions(venue: Venue, venues: VenuesDep) -> list[Position]:
    try:
        return _broker(venues, venue).positions()
    except KyperianError as exc:
        raise _unavailable(exc) from None


@router.get("/{venue}/orders", response_model=list[Order])
def venue_orders(venue: Venue, venues: VenuesDep) -> list[Order]:
    """Open orders at the venue."""
    try:
        return _broker(venues, venue).open_orders()
    except KyperianError as exc:
        raise _unavailable(exc) from None

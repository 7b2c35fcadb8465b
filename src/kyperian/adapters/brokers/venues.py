"""Which live venues this process can reach, built from settings on first use.

The only place that turns settings into venue adapters. A venue is *configured* when its
settings are present (a section of ``KYPERIAN_BROKER_CREDENTIALS``, or ``KYPERIAN_IBKR_HOST``);
asking for one that is not raises ``VenueNotConfigured`` naming the setting to set, which
the API answers with 503. Adapters are imported lazily: a broker SDK (alpaca-py pulls in
pandas) costs start-up time only in an engine that trades on that venue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from kyperian.adapters.brokers.credentials import SETTING, venue_section
from kyperian.domain.brokers import Broker
from kyperian.domain.errors import OperationalError

if TYPE_CHECKING:
    from kyperian.settings import Settings

LIVE_VENUES: Final = ("alpaca", "ibkr", "schwab")
ROUTE_NAMES: Final = {"alpaca": "alpaca", "ibkr": "ibkr", "tda": "schwab"}
"""URL segment -> venue: ``/broker/tda`` is served by Schwab (TD Ameritrade's API is gone)."""


class VenueNotConfigured(OperationalError):
    """The venue has no settings in this environment; ``setting`` says what to set."""

    def __init__(self, venue: str, setting: str) -> None:
        super().__init__(f"{venue} is not configured: set {setting} (see docs/brokers.md)")
        self.venue = venue
        self.setting = setting


def required_setting(venue: str) -> str:
    """The setting that configures a venue, as an operator would type it."""
    if venue == "ibkr":
        return "KYPERIAN_IBKR_HOST"
    return f"{SETTING} (an '{venue}' section)"


def is_configured(settings: Settings, venue: str) -> bool:
    if venue == "ibkr":
        return bool(settings.ibkr_host)
    return venue_section(settings.broker_credentials, venue) is not None


def _overrides(settings: Settings, venue: str) -> dict[str, str]:
    return dict(settings.broker_symbol_overrides.get(venue, {}))


def _alpaca(settings: Settings) -> Broker:
    from kyperian.adapters.brokers.alpaca import (  # noqa: PLC0415 - lazy: SDK import cost
        AlpacaBroker,
        AlpacaConfig,
    )

    section = venue_section(settings.broker_credentials, "alpaca") or {}
    config = AlpacaConfig.from_section(
        section,
        timeout_seconds=settings.broker_timeout_seconds,
        symbol_overrides=_overrides(settings, "alpaca"),
    )
    return AlpacaBroker(config)


def _schwab(settings: Settings, on_token: Callable[[float], None] | None = None) -> Broker:
    from kyperian.adapters.aws.clients import make_client  # noqa: PLC0415 - lazy: SDK import cost
    from kyperian.adapters.brokers.schwab import (  # noqa: PLC0415 - lazy: SDK import cost
        SchwabBroker,
        SchwabConfig,
    )
    from kyperian.adapters.brokers.schwab.token import SchwabTokenStore  # noqa: PLC0415

    section = venue_section(settings.broker_credentials, "schwab") or {}
    config = SchwabConfig.from_section(
        section,
        token_secret_id=settings.schwab_token_secret_id,
        live_orders=settings.schwab_live_orders,
        account_number=settings.schwab_account_number,
        timeout_seconds=settings.broker_timeout_seconds,
        symbol_overrides=_overrides(settings, "schwab"),
    )
    secrets = make_client("secretsmanager", settings)
    store = SchwabTokenStore(config.token_secret_id, secrets, config.token_cache_seconds)
    return SchwabBroker(config, store, on_token=on_token)


def _ibkr(settings: Settings) -> Broker:
    from kyperian.adapters.brokers.ibkr import (  # noqa: PLC0415 - lazy: SDK import cost
        IbkrBroker,
        IbkrConfig,
    )

    section = venue_section(settings.broker_credentials, "ibkr") or {}
    config = IbkrConfig.model_validate(
        {
            "host": settings.ibkr_host,
            "port": settings.ibkr_port,
            "client_id": settings.ibkr_client_id,
            "account": settings.ibkr_account or section.get("account"),
            "timeout_seconds": settings.broker_timeout_seconds,
            "symbol_overrides": _overrides(settings, "ibkr"),
        }
    )
    return IbkrBroker(config)


_BUILDERS: Final[dict[str, Callable[[Settings], Broker]]] = {
    "alpaca": _alpaca,
    "schwab": _schwab,
    "ibkr": _ibkr,
}


class Venues:
    """The live venues of one engine process, each built once when first asked for."""

    def __init__(
        self,
        settings: Settings,
        builders: dict[str, Callable[[Settings], Broker]] | None = None,
        on_schwab_token: Callable[[float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._builders = builders or {
            **_BUILDERS,
            "schwab": lambda s: _schwab(s, on_schwab_token),
        }
        self._built: dict[str, Broker] = {}
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self._settings

    def configured(self, venue: str) -> bool:
        return venue in self._built or is_configured(self._settings, venue)

    def get(self, venue: str) -> Broker:
        """The venue's adapter; ``VenueNotConfigured`` when its settings are missing."""
        with self._lock:
            if venue not in self._built:
                if not is_configured(self._settings, venue):
                    raise VenueNotConfigured(venue, required_setting(venue))
                self._built[venue] = self._builders[venue](self._settings)
            return self._built[venue]

    def add(self, broker: Broker) -> None:
        """Use an already built adapter for its venue (tests, the local stack)."""
        with self._lock:
            self._built[broker.name] = broker

    def close(self) -> None:
        """Disconnect venues that hold a connection (IB Gateway)."""
        for broker in list(self._built.values()):
            broker.close()

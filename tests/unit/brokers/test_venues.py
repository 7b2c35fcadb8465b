"""Venues built from settings: which are configured, what each is built with, what is missing."""

from __future__ import annotations

import json
import socket

import pytest
from pydantic import SecretStr

from kyperian.adapters.brokers.alpaca import AlpacaBroker
from kyperian.adapters.brokers.ibkr import IbkrBroker
from kyperian.adapters.brokers.schwab import SchwabBroker
from kyperian.adapters.brokers.venues import VenueNotConfigured, Venues
from kyperian.domain.errors import InvalidOrderError, OperationalError
from kyperian.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_venue_is_built_from_its_settings_once() -> None:
    # GIVEN credentials for Alpaca (live) and Schwab, an IB Gateway host, and overrides
    credentials = {
        "alpaca": {"api_key_id": "AK", "api_secret_key": "s", "paper": False},
        "schwab": {"app_key": "k", "app_secret": "s"},
    }
    settings = Settings(
        environment="test",
        broker_credentials=SecretStr(json.dumps(credentials)),
        broker_symbol_overrides={"alpaca": {"GME": ""}},
        broker_timeout_seconds=3,
        ibkr_host="127.0.0.1",
        ibkr_port=_closed_port(),
        schwab_live_orders=True,
    )
    venues = Venues(settings)
    try:
        alpaca, schwab, ibkr = venues.get("alpaca"), venues.get("schwab"), venues.get("ibkr")
        # THEN each adapter carries its part of the settings
        assert isinstance(alpaca, AlpacaBroker)
        assert (alpaca.caps.paper, alpaca.config.timeout_seconds) == (False, 3)
        with pytest.raises(InvalidOrderError, match="overridden"):
            alpaca.symbols.to_venue("GME")
        assert isinstance(schwab, SchwabBroker)
        assert schwab.config.token_secret_id == "/kyperian/test/broker/schwab-token"
        assert schwab.config.live_orders is True
        assert isinstance(ibkr, IbkrBroker)
        assert ibkr.config.client_id == 17
        # AND asking again gives the same adapter (one connection, one token cache)
        assert venues.get("alpaca") is alpaca
    finally:
        venues.close()


def test_missing_and_broken_settings_say_what_to_set() -> None:
    venues = Venues(Settings(environment="test"))
    assert not venues.configured("alpaca")
    with pytest.raises(VenueNotConfigured, match="KYPERIAN_BROKER_CREDENTIALS"):
        venues.get("alpaca")
    with pytest.raises(VenueNotConfigured, match="KYPERIAN_IBKR_HOST"):
        venues.get("ibkr")
    broken = Venues(Settings(environment="test", broker_credentials=SecretStr("{not json")))
    with pytest.raises(OperationalError, match="not JSON"):
        broken.get("alpaca")
    placeholder = Venues(
        Settings(environment="test", broker_credentials=SecretStr('{"broker": "paper"}'))
    )
    assert not placeholder.configured("schwab")

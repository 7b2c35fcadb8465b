"""TradingView symbols read once, then turned into each venue's own symbols.

TradingView names instruments ``EXCHANGE:TICKER`` (``NASDAQ:AAPL``, ``BINANCE:BTCUSDT``), marks
perpetual swaps with ``.P`` (``BTCUSDT.P``), continuous futures with ``!`` (``ES1!``) and share
classes with a dot (``BRK.B``); the webhook keeps the exchange apart and decisions carry the
ticker alone. ``parse`` classifies a symbol; each venue's ``symbols`` module says how (and
whether) it trades each kind. An override table (``KYPERIAN_BROKER_SYMBOL_OVERRIDES``) wins over
the rules, for the names no rule gets right. A symbol a venue cannot trade becomes an
``InvalidOrderError`` naming the symbol and the reason: the engine records it as a refusal
on the decision and never retries it.

Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from kyperian.domain.errors import InvalidOrderError

CRYPTO_EXCHANGES: Final = frozenset(
    {
        "BINANCE",
        "BINANCEUS",
        "BITFINEX",
        "BITGET",
        "BITSTAMP",
        "BYBIT",
        "COINBASE",
        "CRYPTO",
        "GEMINI",
        "KRAKEN",
        "KUCOIN",
        "OKX",
        "MEXC",
    }
)
FOREX_EXCHANGES: Final = frozenset({"FX", "FX_IDC", "OANDA", "FOREXCOM", "SAXO", "FXCM"})
CRYPTO_QUOTES: Final = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "BTC", "ETH")
"""Quote currencies recognised at the end of a crypto pair, longest first where they overlap."""
_STABLE_QUOTES: Final = ("USDT", "USDC", "BUSD", "FDUSD")
_CLASS = re.compile(r"^([A-Z]{1,6})[./ ]([A-Z])$")


class Kind(StrEnum):
    EQUITY = "equity"
    CRYPTO = "crypto"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    FOREX = "forex"


@dataclass(frozen=True)
class TvSymbol:
    """A TradingView symbol taken apart."""

    text: str
    """As received, upper-case (``BINANCE:BTCUSDT``)."""
    exchange: str | None
    ticker: str
    """Without the exchange (``BTCUSDT``, ``BRK.B``, ``ES1!``)."""
    kind: Kind
    base: str
    """The equity root (``BRK``), the crypto base (``BTC``) or the ticker itself."""
    quote: str | None = None
    """Crypto/forex quote currency (``USDT``)."""
    share_class: str | None = None
    """``B`` for ``BRK.B``."""


def _pair(ticker: str) -> tuple[str, str] | None:
    for quote in CRYPTO_QUOTES:
        if ticker.endswith(quote) and len(ticker) > len(quote):
            return ticker[: -len(quote)], quote
    return None


def parse(symbol: str, exchange: str | None = None) -> TvSymbol:
    """Classify a TradingView symbol (``EXCHANGE:TICKER`` or the ticker and its exchange).

    Without an exchange a ticker ending in a stablecoin (``BTCUSDT``) is crypto and anything
    else an equity: ``BTCUSD`` alone is read as an equity ticker, so give the exchange (or an
    override) for fiat-quoted crypto.
    """
    text = symbol.strip().upper()
    prefix, _, ticker = text.rpartition(":")
    exch = (prefix or (exchange or "").upper()) or None
    if ticker.endswith(".P"):
        root = ticker[:-2]
        pair = _pair(root)
        base, quote = pair if pair else (root, None)
        return TvSymbol(text, exch, ticker, Kind.PERPETUAL, base, quote)
    if ticker.endswith("!"):
        return TvSymbol(text, exch, ticker, Kind.FUTURE, ticker.rstrip("!").rstrip("0123456789"))
    if exch in FOREX_EXCHANGES and len(ticker) == 6:
        return TvSymbol(text, exch, ticker, Kind.FOREX, ticker[:3], ticker[3:])
    pair = _pair(ticker)
    if pair and (exch in CRYPTO_EXCHANGES or (exch is None and pair[1] in _STABLE_QUOTES)):
        return TvSymbol(text, exch, ticker, Kind.CRYPTO, pair[0], pair[1])
    share = _CLASS.match(ticker)
    if share:
        return TvSymbol(text, exch, ticker, Kind.EQUITY, share[1], share_class=share[2])
    return TvSymbol(text, exch, ticker, Kind.EQUITY, ticker)


class SymbolMapper:
    """One venue's rules from ``TvSymbol`` to its symbol, with an override table on top.

    Subclasses implement ``_map`` and return the venue's symbol or raise ``InvalidOrderError``
    saying why the venue cannot trade it.
    """

    venue: str = "venue"

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._overrides = {k.strip().upper(): v for k, v in (overrides or {}).items()}

    def to_venue(self, symbol: str, exchange: str | None = None) -> str:
        """The venue's symbol; ``InvalidOrderError`` when the venue cannot trade it.

        The override table is looked up by the full ``EXCHANGE:TICKER`` first, then by the
        ticker; an override mapped to the empty string refuses the symbol on purpose.
        """
        tv = parse(symbol, exchange)
        keys = [f"{tv.exchange}:{tv.ticker}"] if tv.exchange else []
        for key in [*keys, tv.ticker]:
            if key in self._overrides:
                mapped = self._overrides[key]
                if not mapped:
                    raise InvalidOrderError(f"{self.venue} does not trade {tv.text}: overridden")
                return mapped
        return self._map(tv)

    def _map(self, tv: TvSymbol) -> str:
        return self.refuse(tv, f"{tv.kind} symbols are not traded here")

    def refuse(self, tv: TvSymbol, reason: str) -> str:
        """Raise the refusal: the symbol, the venue and why (never a vendor error)."""
        raise InvalidOrderError(f"{self.venue} cannot trade {tv.text}: {reason}")

"""TradingView symbols to Interactive Brokers contracts: US stocks on SMART, crypto on PAXOS.

IB names share classes with a space (``BRK B``). Its crypto (through Paxos) is quoted in USD
only, for a few coins; perpetual swaps are not offered, and continuous futures (``ES1!``)
name no expiry, so both are refused, as is forex (not wired here). The override table maps a
TradingView symbol to an IB symbol for anything the rules miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kyperian.adapters.brokers.symbology import Kind, SymbolMapper, TvSymbol, parse

PAXOS_COINS: Final = frozenset({"BTC", "ETH", "LTC", "BCH"})


@dataclass(frozen=True)
class IbInstrument:
    """What an ib_async contract needs: ``Stock(symbol, exchange, currency)`` or ``Crypto``."""

    sec_type: str
    symbol: str
    exchange: str
    currency: str = "USD"


class IbkrSymbols(SymbolMapper):
    venue = "ibkr"

    def _map(self, tv: TvSymbol) -> str:
        if tv.kind is Kind.EQUITY:
            return f"{tv.base} {tv.share_class}" if tv.share_class else tv.ticker
        if tv.kind is Kind.CRYPTO:
            if tv.quote != "USD" or tv.base not in PAXOS_COINS:
                return self.refuse(tv, "IB crypto is BTC ETH LTC BCH against USD only")
            return tv.base
        if tv.kind is Kind.PERPETUAL:
            return self.refuse(tv, "IB offers no perpetual swaps")
        if tv.kind is Kind.FUTURE:
            return self.refuse(tv, "a continuous future names no expiry: map it with an override")
        return self.refuse(tv, f"{tv.kind} is not wired for IB")

    def instrument(self, symbol: str) -> IbInstrument:
        """The contract to trade for an engine symbol (refusal as ``InvalidOrderError``)."""
        venue_symbol = self.to_venue(symbol)
        if parse(symbol).kind is Kind.CRYPTO:
            return IbInstrument("CRYPTO", venue_symbol, "PAXOS")
        return IbInstrument("STK", venue_symbol, "SMART")

    @staticmethod
    def from_venue(symbol: str, sec_type: str = "STK") -> str:
        """IB's symbol as the engine names it: ``BRK B`` -> ``BRK.B``, ``BTC`` -> ``BTCUSD``.

        Crypto is quoted in USD at IB, hence the suffix.
        """
        if sec_type == "CRYPTO":
            return f"{symbol}USD"
        return symbol.replace(" ", ".")

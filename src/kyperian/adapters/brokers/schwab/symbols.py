"""TradingView symbols to Schwab's: US equities only, share classes with a slash.

Schwab's Trader API names share classes ``BRK/B`` (TradingView: ``BRK.B``). Its API trades
no crypto, perpetuals or forex, and futures are not offered through the retail API: those
are refused with the reason.
"""

from __future__ import annotations

from kyperian.adapters.brokers.symbology import Kind, SymbolMapper, TvSymbol


class SchwabSymbols(SymbolMapper):
    venue = "schwab"

    def _map(self, tv: TvSymbol) -> str:
        if tv.kind is Kind.EQUITY:
            return f"{tv.base}/{tv.share_class}" if tv.share_class else tv.ticker
        return self.refuse(tv, f"the Schwab API trades no {tv.kind} symbols")

    @staticmethod
    def from_venue(symbol: str) -> str:
        """Schwab's symbol as the engine names it (``BRK/B`` -> ``BRK.B``)."""
        return symbol.replace("/", ".")

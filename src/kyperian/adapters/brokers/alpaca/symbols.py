"""TradingView symbols to Alpaca's: US equities as they are, crypto as ``BASE/QUOTE``.

Alpaca writes share classes with a dot (``BRK.B``, as TradingView does) and crypto pairs with
a slash (``BTC/USD``, ``ETH/USDT``). It has no perpetual swaps, futures or forex: those are
refused with the reason.
"""

from __future__ import annotations

from typing import Final

from kyperian.adapters.brokers.symbology import Kind, SymbolMapper, TvSymbol

CRYPTO_QUOTES: Final = frozenset({"USD", "USDT", "USDC", "BTC"})


class AlpacaSymbols(SymbolMapper):
    venue = "alpaca"

    def _map(self, tv: TvSymbol) -> str:
        if tv.kind is Kind.EQUITY:
            return f"{tv.base}.{tv.share_class}" if tv.share_class else tv.ticker
        if tv.kind is Kind.CRYPTO:
            if tv.quote not in CRYPTO_QUOTES:
                return self.refuse(tv, f"no {tv.quote} crypto pairs (quotes: USD USDT USDC BTC)")
            return f"{tv.base}/{tv.quote}"
        if tv.kind is Kind.PERPETUAL:
            return self.refuse(tv, "no perpetual swaps (trade the spot pair instead)")
        return self.refuse(tv, f"no {tv.kind} trading")

    @staticmethod
    def from_venue(symbol: str) -> str:
        """Alpaca's symbol as the engine names it (``BTC/USD`` -> ``BTCUSD``)."""
        return symbol.replace("/", "")

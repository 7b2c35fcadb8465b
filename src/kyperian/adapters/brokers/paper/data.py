"""The paper venue's market: the last known price per symbol, fed by the engine's orders.

There is no market data feed in paper trading: each order carries the price its decision
was made at, and that becomes the symbol's mark for valuing positions and for deciding
whether a resting limit order is now marketable. Prices live in the venue's store, so
every task values the account alike.
"""

from __future__ import annotations

from decimal import Decimal

from kyperian.adapters.brokers.paper.store import PaperVenueStore


class PaperMarket:
    """Last prices, read and written through the venue's store."""

    def __init__(self, store: PaperVenueStore) -> None:
        self._store = store

    def mark(self, symbol: str, price: Decimal) -> None:
        """Record the latest price of a symbol."""
        self._store.set_price(symbol, price)

    def price(self, symbol: str) -> Decimal | None:
        """The latest price of a symbol, if one was ever seen."""
        return self._store.price(symbol)

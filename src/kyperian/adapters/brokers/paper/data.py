"""The paper venue's market: the last known price per symbol, fed by the engine's orders.

There is no market data feed in paper trading: each order carries the price its decision
was made at, and that becomes the symbol's mark for valuing positions and for deciding
whether a resting limit order is now marketable.
"""

from __future__ import annotations

import threading
from decimal import Decimal


class PaperMarket:
    """Thread-safe last prices (the API thread reads while the worker writes)."""

    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}
        self._lock = threading.Lock()

    def mark(self, symbol: str, price: Decimal) -> None:
        """Record the latest price of a symbol."""
        with self._lock:
            self._prices[symbol] = price

    def price(self, symbol: str) -> Decimal | None:
        """The latest price of a symbol, if one was ever seen."""
        with self._lock:
            return self._prices.get(symbol)

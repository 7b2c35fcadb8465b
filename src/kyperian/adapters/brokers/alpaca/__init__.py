"""The Alpaca venue (alpaca-py): US equities and crypto, paper or live."""

from kyperian.adapters.brokers.alpaca.config import AlpacaConfig
from kyperian.adapters.brokers.alpaca.execution import AlpacaBroker

__all__ = ["AlpacaBroker", "AlpacaConfig"]

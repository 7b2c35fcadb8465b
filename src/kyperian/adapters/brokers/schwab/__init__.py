"""The Schwab venue (schwab-py), serving ``/broker/tda``: US equities, live only."""

from kyperian.adapters.brokers.schwab.config import SchwabConfig
from kyperian.adapters.brokers.schwab.execution import SchwabBroker

__all__ = ["SchwabBroker", "SchwabConfig"]

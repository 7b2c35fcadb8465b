"""The Interactive Brokers venue (ib_async through an IB Gateway): stocks and Paxos crypto."""

from kyperian.adapters.brokers.ibkr.config import IbkrConfig
from kyperian.adapters.brokers.ibkr.execution import IbkrBroker

__all__ = ["IbkrBroker", "IbkrConfig"]

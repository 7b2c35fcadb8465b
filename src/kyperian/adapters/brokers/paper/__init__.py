"""The paper venue: simulated fills and positions in memory, no network."""

from kyperian.adapters.brokers.paper.config import PaperBrokerConfig
from kyperian.adapters.brokers.paper.execution import PaperBroker

__all__ = ["PaperBroker", "PaperBrokerConfig"]

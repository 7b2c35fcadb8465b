"""The paper venue: simulated fills on an account kept in a durable store, no network."""

from kyperian.adapters.brokers.paper.config import PaperBrokerConfig
from kyperian.adapters.brokers.paper.execution import PaperBroker
from kyperian.adapters.brokers.paper.store import PaperVenueStore

__all__ = ["PaperBroker", "PaperBrokerConfig", "PaperVenueStore"]

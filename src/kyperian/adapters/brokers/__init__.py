"""Broker adapters: each venue a package (``config``, ``execution``, ``data``) behind
``kyperian.domain.brokers.Broker``. Paper trading is one of them, not a flag in the others."""

from kyperian.domain.brokers import Broker, BrokerCapabilities

__all__ = ["Broker", "BrokerCapabilities"]

"""Adapters: the edges where the domain meets AWS, Redis and brokers."""

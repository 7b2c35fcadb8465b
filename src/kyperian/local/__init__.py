"""The embedded local stack: moto in server mode, redis-server, the gateway and the engine.

Local use only (``make run``, end-to-end tests); nothing outside this package and
``kyperian.cli`` imports it, and it is the only product code allowed to use moto.
"""

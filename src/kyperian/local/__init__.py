"""The embedded local stack: moto in server mode, redis-server, the gateway and the engine.

Local use only (``make run``, end-to-end tests, the drills); nothing outside this package,
``kyperian.cli`` and the drills of ``kyperian.ops`` imports it, and it is the only product code
allowed to use moto (``ephemeral`` holds the drills' in-process emulator and redis-server).
"""

"""The engine's HTTP API: one router per resource, joined in ``kyperian.engine.main``."""

"""Pure multi-timeframe fusion: ``fuse(signals, rules, now) -> Decision``.

Nothing here performs I/O or reads the clock, and nothing imports adapters, ingest or
the engine: fusion must replay identically from stored signals.
"""

from kyperian.fusion.compute import fresh_signals, fuse, latest_per_slot
from kyperian.fusion.rules import DEFAULT_WEIGHTS, FusionRules

__all__ = ["DEFAULT_WEIGHTS", "FusionRules", "fresh_signals", "fuse", "latest_per_slot"]

"""Kyperian: TradingView alerts turned into audited, multi-timeframe trading decisions."""

__version__ = "0.1.0"
"""The single source of the version (pyproject reads it); a constant, not package metadata,
because importlib.metadata costs the Lambda ~30 ms of cold start."""

__all__ = ["__version__"]

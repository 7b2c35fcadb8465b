"""Recorded API Gateway HTTP API (payload format 2.0) events and TradingView bodies."""

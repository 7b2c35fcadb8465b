"""Ingestion: the Lambda functions behind the HTTP API that accept TradingView alerts."""

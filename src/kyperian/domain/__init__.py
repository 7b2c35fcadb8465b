"""The domain core: signals, decisions and the contracts adapters implement. No I/O here."""

"""The engine token API tests use (as the brief's contract fixes it) and its header."""

from __future__ import annotations

from typing import Final

ENGINE_TOKEN: Final = "test-engine-token"
AUTH_HEADERS: Final = {"Authorization": f"Bearer {ENGINE_TOKEN}"}

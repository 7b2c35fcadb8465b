"""The engine token API tests use (as the brief's contract fixes it), its header, and a login.

Bearer callers need nothing else. A test of pages or forms signs in by cookie with
``sign_in``; its ``TestClient`` must use ``base_url="http://localhost"``: anywhere else the
session cookie is ``Secure`` and the client would not send it back over plain http.
"""

from __future__ import annotations

from typing import Final

from fastapi.testclient import TestClient

ENGINE_TOKEN: Final = "test-engine-token"
AUTH_HEADERS: Final = {"Authorization": f"Bearer {ENGINE_TOKEN}"}


def sign_in(client: TestClient, token: str = ENGINE_TOKEN) -> str:
    """Log ``client`` in as a person would; returns the session's CSRF token."""
    answer = client.post("/login", data={"token": token}, headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    csrf: str = answer.json()["csrf_token"]
    return csrf

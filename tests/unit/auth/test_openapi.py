"""The auth API's OpenAPI description: kept in docs/, generated from the code, complete."""

from __future__ import annotations

from servers.auth.openapi import openapi_document
from servers.cli import openapi_text
from tests.support import ROOT

DOCS = ROOT / "docs"


def test_docs_copy_is_generated_from_the_code() -> None:
    assert (DOCS / "auth-openapi.json").read_text() == openapi_text(), (
        "run: cardgame openapi --write docs/auth-openapi.json"
    )


def test_every_route_is_described() -> None:
    paths = set(openapi_document()["paths"])
    assert paths == {
        "/login/steam",
        "/login/dev",
        "/token/refresh",
        "/logout",
        "/.well-known/jwks.json",
        "/openapi.json",
        "/metrics",
        "/health",
    }

"""The auth API's OpenAPI description: served by the server, kept in docs/, valid."""

from __future__ import annotations

import json

import httpx

from devtools.stack import Stack
from servers.auth.openapi import openapi_document
from servers.cli import openapi_text
from tests.support import ROOT

DOCS = ROOT / "docs"


def test_docs_copy_is_generated_from_the_code() -> None:
    assert (DOCS / "auth-openapi.json").read_text() == openapi_text(), (
        "run: cardgame openapi --write docs/auth-openapi.json"
    )


async def test_served_document_is_the_same(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        served = (await http.get(f"{stack.auth_url}/openapi.json")).json()
    assert served == json.loads(openapi_text())


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

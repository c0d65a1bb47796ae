"""The auth server serves the OpenAPI description kept in docs/."""

from __future__ import annotations

import json

import httpx

from devtools.stack import Stack
from servers.cli import openapi_text


async def test_served_document_is_the_same(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        served = (await http.get(f"{stack.auth_url}/openapi.json")).json()
    assert served == json.loads(openapi_text())

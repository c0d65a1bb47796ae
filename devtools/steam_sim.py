"""A Steam Web API simulator for development and tests (never deployed).

A real HTTP server speaking the documented `ISteamUserAuth/AuthenticateUserTicket/v1` format, so
that the production client in `steam.py` is what runs end to end. What the Unity client gets from
`GetAuthTicketForWebApi`, tests and the fake client get from `POST /dev/tickets`.

    GET  /ISteamUserAuth/AuthenticateUserTicket/v1/?key=&appid=&ticket=&identity=
         -> {"response": {"params": {...}}} or {"response": {"error": {...}}};
            HTTP 403 for a wrong key (as Steam does)
    POST /dev/tickets  {"persona"?, "steamid"?, "ownersteamid"?, "vacbanned"?,
                        "publisherbanned"?, "appid"?, "identity"?, "delay"?, "ttl"?,
                        "fail_times"?}
         -> {"ticket": "<hex>", "steamid": "<SteamID64>"}
    GET  /dev/tickets/<hex> -> {"steamid", "calls", "fail_times"} (how often Steam was asked)
    POST /dev/mode     {"down"?: bool, "delay"?: seconds, "fail_next"?: n} -> the mode
    GET  /dev/stats    -> {"calls": n, "tickets": n}
    GET  /health

Error codes: 3 "Invalid parameter", 101 "Invalid ticket" (unknown or expired), 102 "Ticket for
other app", 103 "Invalid identity"; they follow Steam's replies as seen in the wild, and the
client treats every `response.error` the same way.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from quart import Quart, Response, jsonify, request

from servers.auth.players import dev_steam_id, is_steam_id64
from servers.common.config import SteamSettings

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
FORBIDDEN = (
    "<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>"
    "Access is denied. Retrying will not help. Please verify your <pre>key=</pre>"
    " parameter.</body></html>"
)


@dataclass
class SimTicket:
    steamid: int
    ownersteamid: int
    vacbanned: bool
    publisherbanned: bool
    appid: int
    identity: str
    expires_at: float
    delay: float  # this ticket's verifications are slow
    fail_times: int = 0  # this ticket's next n verifications answer 503 (Steam having trouble)
    calls: int = 0


@dataclass
class Mode:
    down: bool = False  # every call answers 503
    delay: float = 0.0  # every call waits this long first
    fail_next: int = 0  # the next n calls answer 503


# The routes are closures in here, and mccabe adds every nested function to this one.
def create_app(settings: SteamSettings, instance_id: str = "") -> Quart:  # noqa: C901
    """The simulator; `instance_id` is the stack's, reported by /health (see config.py)."""
    app = Quart("cardgame.steam_sim")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    tickets: dict[str, SimTicket] = {}
    mode = Mode()
    stats = {"calls": 0}

    def error(code: int, desc: str) -> Response:
        return jsonify({"response": {"error": {"errorcode": code, "errordesc": desc}}})

    @app.get("/ISteamUserAuth/AuthenticateUserTicket/v1/")
    @app.get("/ISteamUserAuth/AuthenticateUserTicket/v1")
    async def authenticate() -> Response | tuple[str, int]:
        stats["calls"] += 1
        if mode.fail_next > 0:
            mode.fail_next -= 1
            return "Service Unavailable", 503
        if mode.down:
            return "Service Unavailable", 503
        if mode.delay:
            await asyncio.sleep(mode.delay)
        args = request.args
        if args.get("key") != settings.web_api_key:
            return FORBIDDEN, 403
        ticket_hex, appid, identity = args.get("ticket"), args.get("appid"), args.get("identity")
        if not ticket_hex or not appid or not _HEX.match(ticket_hex) or not appid.isdigit():
            return error(3, "Invalid parameter")
        ticket = tickets.get(ticket_hex.lower())
        if ticket is None or ticket.expires_at < time.time():
            return error(101, "Invalid ticket")
        ticket.calls += 1
        if ticket.fail_times > 0:
            ticket.fail_times -= 1
            return "Service Unavailable", 503
        if ticket.delay:
            await asyncio.sleep(ticket.delay)
        if int(appid) != ticket.appid:
            return error(102, "Ticket for other app")
        if (identity or "") != ticket.identity:
            return error(103, "Invalid identity")
        return jsonify(
            {
                "response": {
                    "params": {
                        "result": "OK",
                        "steamid": str(ticket.steamid),
                        "ownersteamid": str(ticket.ownersteamid),
                        "vacbanned": ticket.vacbanned,
                        "publisherbanned": ticket.publisherbanned,
                    }
                }
            }
        )

    @app.post("/dev/tickets")
    async def issue() -> Response | tuple[Response, int]:
        body: Any = await request.get_json(force=True, silent=True)
        body = body if isinstance(body, dict) else {}
        try:
            if body.get("steamid") is not None:
                steamid = int(body["steamid"])
            elif body.get("persona"):
                steamid = dev_steam_id(str(body["persona"]))
            else:
                steamid = dev_steam_id(secrets.token_hex(8))
            owner = int(body.get("ownersteamid") or steamid)
            if not is_steam_id64(steamid) or not is_steam_id64(owner):
                raise ValueError("not an individual SteamID64")
            ticket = SimTicket(
                steamid=steamid,
                ownersteamid=owner,
                vacbanned=bool(body.get("vacbanned", False)),
                publisherbanned=bool(body.get("publisherbanned", False)),
                appid=int(body.get("appid", settings.app_id)),
                identity=str(body.get("identity", settings.identity)),
                expires_at=time.time() + float(body.get("ttl", 600)),
                delay=float(body.get("delay", 0)),
                fail_times=int(body.get("fail_times", 0)),
            )
        except (TypeError, ValueError) as exc:
            return jsonify({"error": str(exc)}), 400
        # Real Web API tickets are a few hundred bytes; length does not matter to the server.
        ticket_hex = secrets.token_hex(120)
        tickets[ticket_hex] = ticket
        return jsonify({"ticket": ticket_hex, "steamid": str(steamid)})

    @app.get("/dev/tickets/<ticket_hex>")
    async def ticket_info(ticket_hex: str) -> Response | tuple[Response, int]:
        ticket = tickets.get(ticket_hex.lower())
        if ticket is None:
            return jsonify({"error": "unknown ticket"}), 404
        return jsonify(
            {"steamid": str(ticket.steamid), "calls": ticket.calls, "fail_times": ticket.fail_times}
        )

    @app.post("/dev/mode")
    async def set_mode() -> Response:
        body: Any = await request.get_json(force=True, silent=True)
        body = body if isinstance(body, dict) else {}
        mode.down = bool(body.get("down", mode.down))
        mode.delay = float(body.get("delay", mode.delay))
        mode.fail_next = int(body.get("fail_next", mode.fail_next))
        return jsonify({"down": mode.down, "delay": mode.delay, "fail_next": mode.fail_next})

    @app.get("/dev/stats")
    async def get_stats() -> Response:
        return jsonify({"calls": stats["calls"], "tickets": len(tickets)})

    @app.get("/health")
    async def health() -> Response:
        return jsonify({"status": "ok", "instance": instance_id})

    return app

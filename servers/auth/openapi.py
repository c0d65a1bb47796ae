"""The auth server's HTTP API as OpenAPI 3.0 (served at /openapi.json; a copy is kept in
docs/auth-openapi.json and checked by the tests). Schemathesis fuzzes the running server from it.
"""

from __future__ import annotations

from typing import Any

from servers.common.errors import ErrorCode

_HEX_TICKET = r"^([0-9a-fA-F]{2})+$"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _limited() -> dict[str, Any]:
    response = _error("RATE_LIMITED: too many requests from this IP")
    response["headers"] = {
        "Retry-After": {
            "description": "seconds to wait",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return response


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _tokens(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tokens"}}},
    }


COMMON = {"413": _error("MESSAGE_TOO_LARGE: the body is larger than 16 KiB"), "429": _limited()}


def openapi_document() -> dict[str, Any]:
    name = {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "description": "display name for a new player (printable characters)",
    }
    persona = {
        **name,
        "description": "the player's Steam persona name, naming a new player; control,"
        " bidirectional and invisible formatting characters are removed (not refused)",
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "cardgame auth server",
            "version": "1",
            "description": "Steam login, session tokens (EdDSA JWT access tokens, rotating"
            " refresh tokens) and the public keys game servers verify with."
            ' Every error is {"error": {"code", "message"}} with a stable'
            " code (docs/protocol.md).",
        },
        "paths": {
            "/login/steam": {
                "post": {
                    "operationId": "loginSteam",
                    "summary": "Log in with a Steam Web API ticket (GetAuthTicketForWebApi, hex).",
                    "requestBody": _json_body("SteamLogin"),
                    "responses": {
                        "200": _tokens("logged in"),
                        "400": _error("INVALID_MESSAGE"),
                        "401": _error("STEAM_TICKET_INVALID"),
                        "403": _error("STEAM_BANNED or STEAM_FAMILY_SHARED (per policy)"),
                        "501": _error("STEAM_LOGIN_UNAVAILABLE: not configured"),
                        "503": _error("STEAM_UNAVAILABLE: Steam slow or down; retry (Retry-After)"),
                        **COMMON,
                    },
                }
            },
            "/login/dev": {
                "post": {
                    "operationId": "loginDev",
                    "summary": "Development login by name or SteamID64 (development config only).",
                    "requestBody": _json_body("DevLogin"),
                    "responses": {
                        "200": _tokens("logged in"),
                        "400": _error("INVALID_MESSAGE"),
                        "403": _error("DEV_LOGIN_DISABLED"),
                        **COMMON,
                    },
                }
            },
            "/token/refresh": {
                "post": {
                    "operationId": "refreshToken",
                    "summary": "Spend a refresh token for new tokens. A reused refresh token"
                    " revokes its session (REFRESH_TOKEN_REUSED).",
                    "requestBody": _json_body("Refresh"),
                    "responses": {
                        "200": _tokens("new access and refresh token"),
                        "400": _error("INVALID_MESSAGE"),
                        "401": _error("INVALID_REFRESH_TOKEN or REFRESH_TOKEN_REUSED"),
                        **COMMON,
                    },
                }
            },
            "/logout": {
                "post": {
                    "operationId": "logout",
                    "summary": "Revoke the session of a refresh token (body) or of the Bearer"
                    " access token; its access tokens stop working on game servers too.",
                    "security": [{}, {"bearer": []}],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Logout"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "revoked",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/LoggedOut"}
                                }
                            },
                        },
                        "400": _error("INVALID_MESSAGE"),
                        "401": _error("UNAUTHORIZED, TOKEN_EXPIRED or INVALID_REFRESH_TOKEN"),
                        **COMMON,
                    },
                }
            },
            "/.well-known/jwks.json": {
                "get": {
                    "operationId": "jwks",
                    "summary": "Public keys (JWKS) that verify access tokens, by kid.",
                    "responses": {
                        "200": {
                            "description": "the key set",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Jwks"}
                                }
                            },
                        },
                        "429": _limited(),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "429": _limited(),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus exposition (not rate limited; not routed by the"
                    " Ingress).",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "200 when PostgreSQL answers (not rate limited).",
                    "responses": {
                        "200": {
                            "description": "healthy",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        },
                        "503": {
                            "description": "degraded",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        },
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "SteamLogin": {
                    "type": "object",
                    "required": ["ticket"],
                    "properties": {
                        "ticket": {"type": "string", "pattern": _HEX_TICKET, "maxLength": 4096},
                        "name": persona,
                    },
                },
                "DevLogin": {
                    "type": "object",
                    "properties": {
                        "name": name,
                        "steam_id": {
                            "description": "SteamID64 of an individual account",
                            "oneOf": [
                                {"type": "string", "pattern": "^[0-9]{17}$"},
                                {
                                    "type": "integer",
                                    "minimum": 76561197960265729,
                                    "maximum": 76561202255233023,
                                },
                            ],
                        },
                    },
                },
                "Refresh": {
                    "type": "object",
                    "required": ["refresh_token"],
                    "properties": {"refresh_token": {"type": "string"}},
                },
                "Logout": {"type": "object", "properties": {"refresh_token": {"type": "string"}}},
                "Tokens": {
                    "type": "object",
                    "required": [
                        "access_token",
                        "token_type",
                        "expires_in",
                        "refresh_token",
                        "refresh_expires_in",
                        "player_id",
                        "name",
                    ],
                    "properties": {
                        "access_token": {"type": "string", "description": "JWT for game servers"},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "expires_in": {"type": "integer"},
                        "refresh_token": {"type": "string"},
                        "refresh_expires_in": {"type": "integer"},
                        "player_id": {"type": "string", "description": "SteamID64 as a string"},
                        "name": {"type": "string"},
                        "created": {"type": "boolean", "description": "a new player (logins)"},
                    },
                },
                "LoggedOut": {
                    "type": "object",
                    "required": ["revoked", "session_id"],
                    "properties": {
                        "revoked": {"type": "boolean"},
                        "session_id": {"type": "string"},
                    },
                },
                "Jwks": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {
                        "keys": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["kty", "kid", "alg"],
                                "properties": {
                                    "kty": {"type": "string"},
                                    "crv": {"type": "string"},
                                    "x": {"type": "string"},
                                    "y": {"type": "string"},
                                    "kid": {"type": "string"},
                                    "alg": {"type": "string"},
                                    "use": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "instance"],
                    "properties": {
                        "status": {"type": "string"},
                        "database": {"type": "string"},
                        "instance": {
                            "type": "string",
                            "description": "the id of the stack that started this server (empty "
                            "when started on its own); `cardgame up` accepts a health answer "
                            "only from its own instance",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "enum": [c.value for c in ErrorCode]},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            },
        },
    }

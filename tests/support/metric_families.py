"""The metric families each server exposes (docs/operations.md lists them): checked against
every server's /metrics, and used by the alert rules and the dashboard."""

from __future__ import annotations

MATCH_FAMILIES = {
    "cardgame_match_requests",
    "cardgame_matches_formed",
    "cardgame_queue_poisoned",
    "cardgame_queue_size",
    "cardgame_trymatch_tick_seconds",
    "cardgame_queue_wait_seconds",
    "cardgame_queue_oldest_wait_seconds",
    "cardgame_queue_requeued",
    "cardgame_errors",
    "cardgame_pubsub_messages",
    "cardgame_maintenance_mode",
    "cardgame_battle_request_subscribers",
    "cardgame_watchdog_players_removed",
    "cardgame_match_redis_up",
    "cardgame_watchdog_check_failures",
    "cardgame_pod_heartbeat_age_seconds",
    "cardgame_pod_up",
    "process_cpu_seconds",
}


GAME_FAMILIES = {
    "cardgame_ws_connections",
    "cardgame_ws_connects",
    "cardgame_sessions",
    "cardgame_ws_messages",
    "cardgame_queue_requests",
    "cardgame_errors",
    "cardgame_rate_limited",
    "cardgame_pubsub_messages",
    "cardgame_battles",
    "cardgame_battle_duration_seconds",
    "cardgame_battles_running",
    "cardgame_persistence_seconds",
    "cardgame_persistence_failures",
    "cardgame_draining",
    "process_cpu_seconds",
}


AUTH_FAMILIES = {
    "cardgame_http_requests",
    "cardgame_http_request_duration_seconds",
    "cardgame_errors",
    "cardgame_rate_limited",
    "cardgame_pubsub_messages",
    "process_cpu_seconds",
}

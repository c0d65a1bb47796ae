"""Configuration: config/*.toml with environment overrides, refused values, the trip to a child
process."""

from __future__ import annotations

import pytest

from servers.common.config import load_settings


def test_settings_load_development_with_env_overrides() -> None:
    settings = load_settings(
        {
            "CARDGAME_MATCH__TICK_INTERVAL": "0.5",
            "CARDGAME_AUTH__DEV_LOGIN": "false",
            "REDIS_URL": "redis://example:1/2",
            "POD_ID": "pod-9",
        }
    )
    assert settings.env == "development"
    assert settings.match.tick_interval == 0.5
    assert settings.auth.dev_login is False
    assert settings.redis.url == "redis://example:1/2"
    assert settings.pod_id == "pod-9"
    assert settings.match.batch_size == 512  # from config/development.toml


def test_production_settings_disable_dev_login() -> None:
    settings = load_settings({"CARDGAME_ENV": "production"})
    assert settings.auth.dev_login is False
    assert settings.auth.jwt_secret == ""


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        load_settings({"CARDGAME_AUTH__DEV_LOGIN": "maybe"})


def test_unknown_setting_is_an_error(tmp_path) -> None:
    (tmp_path / "development.toml").write_text("[match]\ntick_intervall = 1\n")
    with pytest.raises(ValueError, match="tick_intervall"):
        load_settings({}, config_dir=tmp_path)


def test_settings_survive_the_trip_to_a_child_process() -> None:
    from servers.common.config import to_env

    settings = load_settings({}).replace(
        match={"tick_interval": 0.05}, auth={"dev_login": False}, pod_id="pod-7"
    )
    assert load_settings(to_env(settings)) == settings

"""deploy/: the Prometheus alerting rules (promtool), the Grafana dashboard, and the metric names
both use, which must be ones the servers expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests import promtool
from tests.test_metrics import AUTH_FAMILIES, GAME_FAMILIES, MATCH_FAMILIES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "cardgame-dashboard.json"
EXPOSED = AUTH_FAMILIES | GAME_FAMILIES | MATCH_FAMILIES
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _metric_names(expr: str) -> set[str]:
    return {_family(n) for n in re.findall(r"\b((?:cardgame|process)_[a-z_]+)", expr)}


def test_rules_pass_promtool_check() -> None:
    checked = promtool.run("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_rules_fire_on_their_symptoms() -> None:
    """promtool's unit tests: queue wait, maintenance, a pod without heartbeat and persistence
    failures each fire their alert (and maintenance does not fire before its `for`)."""
    checked = promtool.run("test", "rules", str(RULES.with_name("alerts.test.yml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_the_issue_asks_for_exist() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"CardgameQueueWaitHigh", "CardgamePodWithoutHeartbeat", "CardgameMaintenanceMode",
            "CardgameServerErrorRate", "CardgamePersistenceFailing"} <= names


def test_rules_and_dashboard_use_only_exposed_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used, "no metric names found"
    assert used <= EXPOSED, used - EXPOSED


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["expr"].strip() and target["refId"]


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"

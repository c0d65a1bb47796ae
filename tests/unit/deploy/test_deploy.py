"""deploy/: the Prometheus alerting rules (promtool), the Grafana dashboard and the metric names
both use (which must be ones the servers expose), and the Kubernetes manifests (rendered from
the kustomize overlays and validated against the Kubernetes schemas by kubernetes-validate)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from servers.common.config import load_settings
from tests.support import ROOT, kustomize, promtool
from tests.support.metric_families import AUTH_FAMILIES, GAME_FAMILIES, MATCH_FAMILIES

DEPLOY = ROOT / "deploy"
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


def test_alerts_for_waits_heartbeats_maintenance_errors_and_persistence_exist() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "CardgameQueueWaitHigh",
        "CardgamePodWithoutHeartbeat",
        "CardgameMaintenanceMode",
        "CardgameServerErrorRate",
        "CardgamePersistenceFailing",
    } <= names


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


# ---------------------------------------------------------------- Kubernetes (deploy/k8s)

K8S = DEPLOY / "k8s"
OVERLAYS = ["development", "production"]
KUBERNETES_VERSION = "1.31"  # oldest minor the manifests target (preStop `sleep`: 1.30+)


def _rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["kind"], r["metadata"]["name"]): r for r in kustomize.render(K8S / "overlays" / overlay)
    }


def _containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    resources = kustomize.render(K8S / "overlays" / overlay)
    assert {r["kind"] for r in resources} == {
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_mistake() -> None:
    [pdb] = [
        r
        for r in kustomize.render(K8S / "base")
        if r["kind"] == "PodDisruptionBudget" and r["metadata"]["name"] == "cardgame-pod"
    ]
    pdb["spec"]["maxUnavailabel"] = 1  # a typo: strict validation names it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendering_matches_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the Python renderer is checked against it elsewhere")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]
    assert kustomize.normalise(kustomize.render(K8S / "overlays" / overlay)) == kustomize.normalise(
        theirs
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_pod_runs_match_and_game_side_by_side(overlay: str) -> None:
    resources = _rendered(overlay)
    pod = resources[("Deployment", "cardgame-pod")]
    containers = _containers(pod)
    assert set(containers) == {"game", "match"}
    for container in containers.values():
        assert _env(container)["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert container["args"][:1] == ["serve"] and container["args"][1] == container["name"]
    game, match = containers["game"], containers["match"]
    assert game["livenessProbe"]["httpGet"]["path"] == "/health"
    assert game["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert match["livenessProbe"]["httpGet"]["path"] == "/health/game-server"
    assert match["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert match["startupProbe"]["httpGet"]["path"] == "/health"
    # /ready (and the auth server's /health) ask Redis or PostgreSQL: a dependency outage
    # must make pods unready, never restart them.
    for container in containers.values():
        assert container["livenessProbe"]["httpGet"]["path"] != "/ready"
        # The probes answer within a bounded time (/ready's PING waits 0.8 s at most).
        assert container["readinessProbe"].get("timeoutSeconds", 1) >= 1
    # The match liveness probe reads the watchdog's consecutive-failure count: restarting
    # takes the liveness rule (numsub_failures checks) plus the probe's own failures.
    settings = load_settings({"CARDGAME_ENV": "production"})
    live = match["livenessProbe"]
    rule = settings.match.numsub_check_interval * settings.match.numsub_failures
    assert rule + live["periodSeconds"] * live["failureThreshold"] >= 60
    # Auth is its own Deployment.
    assert set(_containers(resources[("Deployment", "cardgame-auth")])) == {"auth"}


def test_termination_grace_covers_the_drain() -> None:
    settings = load_settings({"CARDGAME_ENV": "production"})
    for overlay in OVERLAYS:
        pod = _rendered(overlay)[("Deployment", "cardgame-pod")]
        game = _containers(pod)["game"]
        drain = float(
            _env(game).get("CARDGAME_GAME__DRAIN_DEADLINE") or settings.game.drain_deadline
        )
        pre_stop = game["lifecycle"]["preStop"]["sleep"]["seconds"]
        hypercorn_graceful = 5  # servers/common/http.py: config.graceful_timeout
        grace = pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= pre_stop + drain + hypercorn_graceful, overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_pdb_hpa_and_ingress_point_at_the_right_pods(overlay: str) -> None:
    resources = _rendered(overlay)
    pod = resources[("Deployment", "cardgame-pod")]
    auth = resources[("Deployment", "cardgame-auth")]

    def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    def port_names(deployment: dict[str, Any]) -> set[str]:
        return {p["name"] for c in _containers(deployment).values() for p in c.get("ports", [])}

    game_svc = resources[("Service", "cardgame-game")]
    auth_svc = resources[("Service", "cardgame-auth")]
    assert selects(game_svc["spec"]["selector"], pod)
    assert selects(auth_svc["spec"]["selector"], auth)
    assert game_svc["spec"]["ports"][0]["targetPort"] in port_names(pod)
    assert (
        _containers(pod)["game"]["ports"][0]["name"] == game_svc["spec"]["ports"][0]["targetPort"]
    )  # the Service reaches the game server, never the match server
    assert auth_svc["spec"]["ports"][0]["targetPort"] in port_names(auth)
    assert selects(
        resources[("PodDisruptionBudget", "cardgame-pod")]["spec"]["selector"]["matchLabels"], pod
    )
    hpa = resources[("HorizontalPodAutoscaler", "cardgame-pod")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "cardgame-pod"
    assert hpa["spec"]["minReplicas"] <= pod["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in resources[("Ingress", "cardgame")]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes["/ws"] == "cardgame-game"
    assert routes["/login"] == routes["/token"] == "cardgame-auth"
    assert not any(p.startswith(("/metrics", "/health", "/ready")) for p in routes)
    # Prometheus (deploy/prometheus/prometheus.yml) keeps ports named http or match-http.
    assert port_names(pod) == {"http", "match-http"}


def test_dockerfile_builds_one_image_for_every_server() -> None:
    text = (DEPLOY.parent / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["cardgame"]' in text
    for needed in ("config", "content", "lua", "migrations", "servers"):
        assert f"COPY {needed} {needed}" in text
    for tool in ("devtools", "fake_client", "console", "loadtest", "tests"):
        assert not re.search(rf"^COPY .*\b{tool}\b", text, re.MULTILINE), f"{tool} in the image"
    assert re.search(r"^USER \d+", text, re.MULTILINE), "numeric user for runAsNonRoot"

"""Static checks of everything under deploy/ and the Dockerfile, with the real linters.

hadolint (Dockerfile), the compose specification (check-jsonschema's vendored compose-spec),
`kubernetes-validate --strict` (built-in resources), a schema of the PodMonitor fields we use
(CRDs are not in kubernetes-validate), `promtool check rules` + `promtool test rules`,
`promtool check config`, `haproxy -c`, `systemd-analyze verify`; then the cross-file invariants
no linter knows: every drain budget covers graceful_timeout, alert expressions only name metrics
the collector exports, compose mounts the Grafana provisioning that exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from aioprefork.config.model import Config
from aioprefork.config.units import parse_duration
from aioprefork.metrics.collector import metric_families
from aioprefork.snapshot import ListenQueue, SlotView, Snapshot

from .support import DEPLOY, ROOT, run, tool

K8S = DEPLOY / "kubernetes"
GRACEFUL_TIMEOUT = Config().graceful_timeout  # the default every deploy file must cover


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_dockerfile_hadolint_clean() -> None:
    result = run([tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.12-slim$", text, re.M)
    assert re.search(r"^ARG BUILD_IMAGE=python:3\.12$", text, re.M)  # the same Python, with gcc
    assert text.count("FROM ${BUILD_IMAGE} AS build") == 1  # wheels stage (compiles)
    assert text.count("FROM ${BASE_IMAGE}") == 1  # runtime stage
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", text, re.M)
    assert re.search(r"^ARG UID=(\d+)$", text, re.M)
    assert "EXPOSE 8000 9464" in text
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", text, re.M)
    assert "tini" not in re.sub(r"^#.*$", "", text, flags=re.M)  # the master is PID 1
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[0] == "*" or "*" in ignored  # context = only what is copied


def test_compose_matches_the_compose_specification() -> None:
    compose = DEPLOY / "compose" / "compose.yaml"
    result = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_stack_shape() -> None:
    compose = load_yaml(DEPLOY / "compose" / "compose.yaml")
    services = compose["services"]
    app = services["app"]
    assert app["deploy"]["replicas"] == 2
    assert parse_duration(app["stop_grace_period"]) > GRACEFUL_TIMEOUT
    assert app["stop_signal"] == "SIGTERM"
    assert set(services) >= {"app", "haproxy", "prometheus", "grafana"}
    # HAProxy's fixed address is the one aioprefork trusts for X-Forwarded-For / PROXY.
    haproxy_ip = services["haproxy"]["networks"]["backend"]["ipv4_address"]
    assert app["environment"]["AIOPREFORK_FORWARDED_ALLOW_IPS"] == haproxy_ip
    for service in services.values():  # published ports stay on loopback
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    # Grafana provisioning is deploy/grafana/ (the metrics work): every mounted path exists,
    # and the provisioned datasource points at the compose Prometheus service.
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / "compose" / source).resolve().exists(), volume
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "aioprefork.yaml")
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert providers["providers"][0]["options"]["path"] in mounted


def test_compose_prometheus_config() -> None:
    result = run([tool("promtool"), "check", "config", str(DEPLOY / "compose" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


K8S_RESOURCES = ["deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"]


def test_kubernetes_manifests_validate_strictly() -> None:
    files = [str(K8S / name) for name in K8S_RESOURCES]
    result = run([tool("kubernetes-validate"), "--strict", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files), result.stdout


# The PodMonitor fields we use, with the types and duration pattern of the prometheus-operator
# CRD (monitoring.coreos.com/v1). kubernetes-validate has no CRD schemas, so this is checked here.
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
PODMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object"}},
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        },
                    },
                },
            },
        },
    },
}


def test_podmonitor_matches_the_crd_fields_and_the_deployment() -> None:
    monitor = load_yaml(K8S / "podmonitor.yaml")
    jsonschema.validate(monitor, PODMONITOR_SCHEMA)
    deployment = load_yaml(K8S / "deployment.yaml")
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted([*K8S_RESOURCES, "podmonitor.yaml"])
    for name in kustomization["resources"]:
        assert (K8S / name).exists()


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_kubernetes_termination_covers_the_drain() -> None:
    spec = load_yaml(K8S / "deployment.yaml")["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    graceful = parse_duration(_env(container).get("AIOPREFORK_GRACEFUL_TIMEOUT", "30s"))
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + graceful + 5
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile_uid = re.search(r"^ARG UID=(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_uid and pod["securityContext"]["runAsUser"] == int(dockerfile_uid[1])
    assert container["resources"]["limits"] and container["resources"]["requests"]
    # workers matches the CPU limit (cpu count would see the node)
    assert int(_env(container)["AIOPREFORK_WORKERS"]) == int(
        container["resources"]["limits"]["cpu"]
    )
    # the pid file / control socket directory is writable under a read-only root filesystem
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/run/aioprefork" in mounts


def test_alert_rules_check_and_unit_tests() -> None:
    rules = DEPLOY / "prometheus" / "alerts.yml"
    checked = run([tool("promtool"), "check", "rules", str(rules)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(
        [tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=str(DEPLOY / "prometheus")
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = {r["alert"] for g in load_yaml(rules)["groups"] for r in g["rules"]}
    assert {
        "AioPreforkWorkersAtMax",
        "AioPreforkHeartbeatTimeouts",
        "AioPreforkCrashLoop",
        "AioPreforkHigh5xxRatio",
    } <= names
    readme = (DEPLOY / "README.md").read_text()
    for name in names:  # the runbook explains every alert
        assert name in readme, name


def _exported_names() -> set[str]:
    """Every sample name the collector renders for a snapshot with one worker and some history."""
    from aioprefork.snapshot import Totals

    slot = SlotView(slot=0, pid=1, gen=1, state="ready", current=True, heartbeat_age=0.5)
    snap = Snapshot(
        now=0.0,
        pid=1,
        master_state="running",
        generation=1,
        started_at=0.0,
        version="0",
        slots=(slot,),
        server_limit=4,
        worker_connections=10,
        min_workers=1,
        max_workers=2,
        min_spare_slots=5,
        max_spare_slots=30,
        idle_slots=10,
        spawn_rate=1,
        spawned_total={"boot": 1},
        exited_total={"crash": 1},
        restarts_total={"graceful:ok": 1},
        totals=Totals(requests=2, by_method_class={("GET", "2xx"): 1, ("GET", "5xx"): 1}),
        listen_queues=(ListenQueue(listener="0.0.0.0:8000", queued=0, limit=2048),),
    )
    return {sample.name for family in metric_families(snap) for sample in family.samples}


def test_alert_expressions_use_exported_metric_names() -> None:
    exported = _exported_names()
    rules = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"\baioprefork_[a-z_]+", rule["expr"]):
                assert name in exported, f"{rule['alert']}: {name} is not exported"
    labels = _exported_label_values()
    assert {"crash", "hung", "boot_failure"} <= labels["cause"]
    assert "5xx" in labels["status_class"]
    assert "halted" in labels["state"]


def _exported_label_values() -> dict[str, set[str]]:
    from aioprefork.http.stats import STATUS_CLASSES
    from aioprefork.master.exits import ExitCause
    from aioprefork.metrics.collector import MASTER_STATES

    return {
        "cause": {c.value for c in ExitCause},
        "status_class": set(STATUS_CLASSES),
        "state": set(MASTER_STATES),
    }


HAPROXY_ENV = {
    "HAPROXY_BIND": "127.0.0.1:1",
    "HAPROXY_ADMIN_SOCKET": "/tmp/aioprefork-haproxy-check.sock",
    "APP1_ADDR": "127.0.0.1:2",
    "APP2_ADDR": "127.0.0.1:3",
    "APP1_CHECK": "4",
    "APP2_CHECK": "5",
}


@pytest.mark.parametrize("proxy_protocol", ["", "true"])
def test_haproxy_configs_are_valid(proxy_protocol: str) -> None:
    env = {**HAPROXY_ENV, "AIOPREFORK_PROXY_PROTOCOL": proxy_protocol}
    for config in (DEPLOY / "haproxy" / "haproxy.cfg", DEPLOY / "compose" / "haproxy.cfg"):
        result = run([tool("haproxy"), "-c", "-f", str(config)], env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify, with ExecStart pointed at this venv's aioprefork (it checks that
    the command exists)."""
    for unit in ("aioprefork.socket", "aioprefork.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        text = text.replace("/opt/aioprefork/venv/bin/aioprefork", tool("aioprefork"))
        (tmp_path / unit).write_text(text)
    result = run(
        [
            tool("systemd-analyze"),
            "verify",
            "--man=no",
            str(tmp_path / "aioprefork.socket"),
            str(tmp_path / "aioprefork.service"),
        ],
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aioprefork." not in result.stderr, result.stderr  # no warning about our units


def test_systemd_stop_budget_covers_the_drain() -> None:
    service = (DEPLOY / "systemd" / "aioprefork.service").read_text()
    timeout = re.search(r"^TimeoutStopSec=(\d+)$", service, re.M)
    assert timeout and int(timeout[1]) > GRACEFUL_TIMEOUT
    assert re.search(r"^KillMode=mixed$", service, re.M)
    assert re.search(r"^ExecReload=\S+ ctl graceful$", service, re.M)
    socket_unit = (DEPLOY / "systemd" / "aioprefork.socket").read_text()
    assert re.search(r"^Accept=no$", socket_unit, re.M)

"""docker-compose.yml cannot be run here (no Docker engine), so check what it promises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_uses_current_rabbitmq_4_and_postgresql_17_images(compose):
    services = compose["services"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:4")
    assert services["postgres"]["image"] == "postgres:17"


def test_runs_migrations_once_before_two_worker_replicas(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["assetsync", "migrate"]
    assert services["worker"]["command"] == ["assetsync", "worker"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert worker["stop_grace_period"] == "15s"  # SIGTERM handling needs under 10 s


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if service.get("restart") != "no":
            assert "healthcheck" in service, name


def test_demo_jira_and_traffic_are_in_the_demo_profile_only(compose):
    services = compose["services"]
    demo = {n for n, s in services.items() if "demo" in s.get("profiles", [])}
    assert demo == {"demo-jira", "demo-traffic", "demo-webhooks", "demo-webhooks-register"}
    assert services["demo-jira"]["command"][:3] == ["python", "-m", "demo.fake_jira"]
    # Only the demo Jira's image has demo/ (the Dockerfile's `demo` target).
    assert services["demo-jira"]["build"] == {"context": ".", "target": "demo"}
    assert all(s["build"] == "." for n, s in services.items() if "build" in s and n != "demo-jira")


def test_the_webhook_receiver_is_opt_in_and_has_no_default_secret(compose):
    services = compose["services"]
    receiver = services["webhooks"]
    assert receiver["profiles"] == ["webhooks"]
    assert receiver["command"] == ["assetsync", "webhooks"]
    assert receiver["environment"]["ASSETSYNC_WEBHOOK_SECRET"] == "${ASSETSYNC_WEBHOOK_SECRET:-}"
    assert "ASSETSYNC_WEBHOOK_INSECURE" not in receiver["environment"]
    assert "/healthz" in " ".join(receiver["healthcheck"]["test"])
    # The demo registers its receiver through Jira's REST API with the same secret.
    demo_secret = services["demo-webhooks"]["environment"]["ASSETSYNC_WEBHOOK_SECRET"]
    register = services["demo-webhooks-register"]
    assert register["command"][1:4] == ["webhooks", "register", "--url"]
    assert register["environment"]["ASSETSYNC_WEBHOOK_SECRET"] == demo_secret


def test_services_get_every_required_setting(compose):
    env = compose["services"]["worker"]["environment"]
    for name in ("ASSETSYNC_AMQP_URL", "ASSETSYNC_DATABASE_URL", "ASSETSYNC_JIRA_URL"):
        assert env[name], name
    assert compose_default(env["ASSETSYNC_DATABASE_URL"]).startswith("postgresql://")
    assert compose["services"]["demo-traffic"]["environment"] == env


def test_the_image_installs_the_wheel_of_every_package_and_not_the_demo_or_the_tests():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    wheel, base, demo, default = stages
    for package in ("assetsync", "worker", "producers", "schemas", "console"):
        assert f"COPY {package} ./{package}" in wheel, package
    assert "pip wheel" in wheel and "pip install /dist/*.whl" in base
    assert not re.search(r"^COPY", base, re.M) and not re.search(r"^COPY.* tests", dockerfile, re.M)
    assert demo.startswith("base AS demo") and "COPY --chown=assetsync demo ./demo" in demo
    assert default.strip() == "base"  # the default target: the product alone
    assert 'CMD ["assetsync", "worker"]' in base and "STOPSIGNAL SIGTERM" in base


def test_published_ports_are_reachable_from_this_machine_only(compose):
    # Default credentials on all interfaces let anyone on the network in.
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_the_broker_refuses_messages_larger_than_the_worker_reads(compose):
    from worker.settings import Settings

    mounts = compose["services"]["rabbitmq"]["volumes"]
    [conf] = [m.split(":")[0] for m in mounts if "conf.d" in m]
    lines = (ROOT / conf).read_text().splitlines()
    [limit] = [line.split("=")[1].strip() for line in lines if line.startswith("max_message_size")]
    assert int(limit) == Settings().max_message_bytes


def compose_default(value: str) -> str:
    """What Compose makes of ``${NAME:-default}`` when NAME is not set."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value

"""docker-compose.yml cannot be run here (no Docker engine), so check what it promises."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.access import grants, password_variable
from schemas.access import main as access_main

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


def amqp_user(env: dict[str, str]) -> str:
    return env["ASSETSYNC_AMQP_URL"].split("://")[1].split(":")[0]


def test_each_component_gets_its_own_broker_user_and_only_the_credentials_it_needs(compose):
    services = compose["services"]
    users = {g.component: g.user for g in grants()}
    expected = {
        "worker": "worker",
        "webhooks": "webhooks",
        "demo-webhooks": "webhooks",
        "demo-traffic": "admin",
        "console": "operator",
    }
    for service, component in expected.items():
        env = services[service]["environment"]
        assert amqp_user(env) == users[component], service
        password = password_variable(next(g for g in grants() if g.component == component))
        assert f"${{{password}:?" in env["ASSETSYNC_AMQP_URL"], service  # from .env, no default
    for receiver in ("webhooks", "demo-webhooks"):
        env = services[receiver]["environment"]
        assert not {"ASSETSYNC_DATABASE_URL", "ASSETSYNC_JIRA_TOKEN"} & set(env), receiver
    register = services["demo-webhooks-register"]["environment"]
    assert "ASSETSYNC_AMQP_URL" not in register and "ASSETSYNC_DATABASE_URL" not in register
    traffic = services["demo-traffic"]["environment"]
    assert "ASSETSYNC_JIRA_TOKEN" not in traffic
    assert traffic["ASSETSYNC_DATABASE_URL"].startswith("postgresql://assetsync_admin:")
    assert set(services["migrate"]["environment"]) == {"ASSETSYNC_DATABASE_URL"}


def test_rabbitmq_loads_the_definitions_broker_users_renders_from_env(
    compose, tmp_path, monkeypatch
):
    services = compose["services"]
    init = services["broker-users"]
    assert init["command"][:3] == ["python", "-m", "schemas.access"]
    written = Path(init["command"][3])
    [volume] = [v for v in init["volumes"] if v.endswith(":" + str(written.parent))]
    name = volume.split(":")[0]
    [mounted] = [v for v in services["rabbitmq"]["volumes"] if v.startswith(name + ":")]
    in_rabbitmq = Path(mounted.split(":")[1]) / written.name
    confs = [v.split(":")[0] for v in services["rabbitmq"]["volumes"] if "conf.d" in v]
    loads = [
        line.split("=", 1)[1].strip()
        for conf in confs
        for line in (ROOT / conf).read_text().splitlines()
        if line.startswith("load_definitions")
    ]
    assert loads == [str(in_rabbitmq)]
    assert services["rabbitmq"]["depends_on"]["broker-users"] == {
        "condition": "service_completed_successfully"
    }
    # Every password it needs comes from .env, and none has a default.
    env = init["environment"]
    for grant in grants():
        assert env[password_variable(grant)].startswith(f"${{{password_variable(grant)}:?")
    for variable in env:
        monkeypatch.setenv(variable, f"pw-{variable}")
    monkeypatch.setenv("RABBITMQ_DEFAULT_USER", "admin")
    out = tmp_path / "definitions.json"
    assert access_main([str(out)]) == 0
    rendered = json.loads(out.read_text())
    assert [p["user"] for p in rendered["topic_permissions"]] == [g.user for g in grants()]
    for grant, perm in zip(grants(), rendered["topic_permissions"], strict=True):
        assert (perm["exchange"], perm["write"], perm["read"]) == (
            "assetsync",
            grant.topic_write,
            grant.topic_read,
        )
    assert "pw-" not in out.read_text()  # hashes only


def test_scripts_compose_env_writes_every_password_compose_requires(compose, tmp_path):
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    script = (ROOT / "scripts" / "compose-env").read_text()
    written = set(re.findall(r"echo \"(\w+)=", script))
    written |= {
        f"ASSETSYNC_{c}_AMQP_PASSWORD"
        for c in re.findall(r"for c in ([A-Z_ ]+);", script)[0].split()
    }
    assert required <= written


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
    confs = [m.split(":")[0] for m in mounts if "conf.d" in m]
    lines = [line for conf in confs for line in (ROOT / conf).read_text().splitlines()]
    [limit] = [line.split("=")[1].strip() for line in lines if line.startswith("max_message_size")]
    assert int(limit) == Settings().max_message_bytes


def compose_default(value: str) -> str:
    """What Compose makes of ``${NAME:-default}`` when NAME is not set."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def test_the_security_pages_rabbitmq_commands_and_table_are_the_shipped_grants():
    readme = (ROOT / "docs" / "security.md").read_text()
    for grant in grants():
        assert (
            f"rabbitmqctl set_permissions -p / {grant.user} '{grant.configure}'"
            f" '{grant.write}' '{grant.read}'"
        ) in readme
        assert (
            f"rabbitmqctl set_topic_permissions -p / {grant.user} assetsync"
            f" '{grant.topic_write}' '{grant.topic_read}'"
        ) in readme
        row = (
            f"| `{grant.user}` | {grant.component} | `{grant.configure}` | `{grant.write}`"
            f" | `{grant.read}` | `{grant.topic_write}` |"
        )
        assert row in readme
    assert len(re.findall(r"rabbitmqctl set_permissions -p / assetsync-", readme)) == len(grants())

"""``assetsync COMMAND``: one command for every program, each the same program as the
``python -m ...`` form documented before it (same options, output and exit codes), and
the wheel a fresh virtualenv installs (without the demo Jira or the tests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from assetsync.__main__ import COMMANDS
from lab.harness import ROOT

PACKAGES = ("assetsync", "worker", "producers", "schemas", "console")
NOT_SOURCE = (".git", ".venv", "__pycache__", "*_cache", "build", "*.egg-info", "node_modules")
# Every ``python -m`` form documented in 0.2.0, and the ``assetsync`` command it is.
FORMS = {
    "worker": ["worker"],
    "migrate": ["worker", "migrate"],
    "sync": ["producers.bulk_sync"],
    "sync status": ["producers.bulk_sync", "status"],
    "login": ["producers.login_event"],
    "webhooks": ["producers.jira_webhooks"],
    "webhooks register": ["producers.jira_webhooks", "register"],
    "security-log": ["producers.security_log"],
    "dead-letters": ["producers.dead_letters"],
}


def run(argv: list[str], *, cwd: Path = ROOT, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(COLUMNS="300", **settings)  # no wrapping: the program names differ in length
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def both(command: str, *args: str, **settings: str) -> tuple[str, str, list[str], list[str]]:
    """(assetsync's prog, python -m's prog, argv of one, argv of the other)."""
    module, *rest = FORMS[command]
    new = [sys.executable, "-m", "assetsync", *command.split(), *args]
    old = [sys.executable, "-m", module, *rest, *args]
    new_prog = f"assetsync {command.split()[0]}"
    old_prog = f"python -m {module}" + (" migrate" if command == "migrate" else "")
    return new_prog, old_prog, new, old


@pytest.mark.parametrize("command", FORMS)
def test_each_documented_python_m_form_is_the_same_program_as_its_assetsync_command(command):
    new_prog, old_prog, new, old = both(command, "--help")

    via_assetsync, via_module = run(new), run(old)

    assert via_assetsync.returncode == via_module.returncode == 0, via_assetsync.stderr
    if command == "migrate":  # `assetsync migrate` takes only what `migrate` needs
        assert "--env-file" in via_assetsync.stdout and "--env-file" in via_module.stdout
        return
    said = via_module.stdout.replace(old_prog.removesuffix(" migrate"), "PROG")
    assert via_assetsync.stdout.replace(new_prog, "PROG") == said


@pytest.mark.parametrize(
    ("command", "args", "code", "says"),
    [
        ("login", [], 2, "give exactly one of USERNAME, --key, --account-id (see --help)"),
        ("sync", ["--timeout", "5"], 2, "--timeout needs --wait or --json (see --help)"),
        ("dead-letters", ["replay"], 2, "replay: say which: --type, --reason, --id, or --all"),
    ],
)
def test_both_forms_fail_alike_in_one_line(command, args, code, says):
    new_prog, old_prog, new, old = both(command, *args)

    via_assetsync, via_module = run(new), run(old)

    assert via_assetsync.returncode == via_module.returncode == code
    assert via_assetsync.stderr.startswith(f"{new_prog}: ") and says in via_assetsync.stderr
    assert via_module.stderr == via_assetsync.stderr.replace(new_prog, old_prog, 1)
    assert len(via_assetsync.stderr.splitlines()) == 1


def test_both_forms_publish_the_same_login_event(broker):
    settings = {"ASSETSYNC_AMQP_URL": broker.url, "ASSETSYNC_AMQP_PREFIX": broker.topology.prefix}
    _, _, new, old = both("login", "jdoe")

    assert run(new, **settings).returncode == 0
    assert run(old, **settings).returncode == 0

    events = [json.loads(body) for body, _ in broker.drain(broker.topology.login_queue)]
    assert [(e["type"], e["username"]) for e in events] == [("user-logged-in", "jdoe")] * 2


def test_help_lists_every_command_and_a_bad_one_is_a_usage_error():
    listed = run([sys.executable, "-m", "assetsync", "--help"])
    unknown = run([sys.executable, "-m", "assetsync", "synch"])
    bare = run([sys.executable, "-m", "assetsync"])

    assert listed.returncode == 0
    assert re.findall(r"^  (\S+)  ", listed.stdout, re.M) == list(COMMANDS)
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "assetsync: no command 'synch' (see --help)\n",
    )
    assert bare.returncode == 2 and bare.stderr.startswith("usage: assetsync COMMAND")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` builds, from a copy of the checkout (a build in the
    checkout itself would leave build/ and egg-info behind)."""
    source, out = tmp_path_factory.mktemp("source") / "assetsync", tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [found] = out.glob("assetsync-*.whl")
    return found


def test_the_wheel_holds_the_product_and_neither_the_demo_nor_the_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if "/" in n and ".dist-info" not in n}

    assert packages == set(PACKAGES)
    assert any(re.fullmatch(r"worker/migrations/0001_\w+\.sql", n) for n in names)
    assert "schemas/user-logged-in.schema.json" in names
    assert any(n.startswith("console/templates/") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert (
        "assetsync = assetsync.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_the_wheel_in_a_fresh_virtualenv_gives_a_working_assetsync(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    installed = run([str(env_dir / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assetsync = str(env_dir / "bin" / "assetsync")

    shown = run([assetsync, "--help"], cwd=tmp_path)  # not the checkout: the installed code
    bad = run([assetsync, "worker", "check"], cwd=tmp_path, ASSETSYNC_AMQP_PREFIX="bad prefix!")

    assert shown.returncode == 0, shown.stderr
    assert re.findall(r"^  (\S+)  ", shown.stdout, re.M) == list(COMMANDS)
    assert bad.returncode == 78
    assert bad.stderr.startswith("assetsync worker: invalid setting ASSETSYNC_AMQP_PREFIX: ")
    where = run([str(env_dir / "bin" / "python"), "-c", "import worker; print(worker.__file__)"],
                cwd=tmp_path)  # fmt: skip
    assert where.stdout.startswith(str(env_dir))
    demo = run([str(env_dir / "bin" / "python"), "-c", "import demo"], cwd=tmp_path)
    assert demo.returncode == 1 and "No module named 'demo'" in demo.stderr

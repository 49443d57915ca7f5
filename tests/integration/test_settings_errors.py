"""Every command checks the settings the same way at start: a bad value stops it with
one line naming the setting and exit code 78 (``os.EX_CONFIG``), before it connects to
anything or listens anywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab.harness import ROOT

COMMANDS = {
    "worker": ["worker", "check"],
    "webhook receiver": ["producers.jira_webhooks"],
    "security-log source": ["producers.security_log", "/nonexistent/security.log"],
    "login event": ["producers.login_event", "jdoe"],
    "bulk sync": ["producers.bulk_sync"],
    "bulk sync status": ["producers.bulk_sync", "status"],
    "dead letters": ["producers.dead_letters"],
}


def run(module: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(ASSETSYNC_JIRA_URL="http://127.0.0.1:1", ASSETSYNC_WEBHOOK_INSECURE="true")
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", *module],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        # Seen in 0.2.0: the receiver took this prefix and kept running.
        ("ASSETSYNC_AMQP_PREFIX", "bad prefix!", "String should match pattern"),
        ("ASSETSYNC_JIRA_TIMEOUT", "600", "less than or equal to 60"),
        ("ASSETSYNC_LOG_FORMAT", "xml", "Input should be 'text' or 'json'"),
    ],
)
def test_a_bad_setting_stops_every_command_with_one_line_and_exit_78(command, name, value, says):
    done = run(COMMANDS[command], **{name: value})

    prog = "python -m " + COMMANDS[command][0]
    assert done.returncode == os.EX_CONFIG == 78
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"{prog}: invalid setting {name}: ")
    assert says in done.stderr
    assert done.stdout == ""

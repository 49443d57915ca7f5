"""RabbitMQ policies for a test's own queues, set with rabbitmqctl: how a test makes the
broker refuse a publish (a full queue with ``reject-publish`` overflow nacks it)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def broker_policy(name: str, queue: str, definition: dict[str, Any]) -> Iterator[None]:
    """Apply ``definition`` to the queue named ``queue`` for the duration of a block.

    Skips the test where rabbitmqctl cannot set policies (e.g. a broker in a container).
    """
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.skip("rabbitmqctl is needed to make the broker refuse a publish")
    pattern = "^" + queue.replace(".", "\\.") + "$"
    args = ["--apply-to", "queues", name, pattern, json.dumps(definition)]
    if subprocess.run([ctl, "set_policy", *args], capture_output=True).returncode != 0:
        pytest.skip("rabbitmqctl cannot set policies on this broker")
    try:
        time.sleep(1)  # a policy reaches its queue asynchronously
        yield
    finally:
        subprocess.run([ctl, "clear_policy", name], capture_output=True)

"""What each step of a bulk-synced user costs a worker's CPU, in-process.

``python -m bench.worker_steps [--reps 15]`` runs each step over one page of 1,000
sample users (the fake Jira's Data Center JSON) and prints the best of ``--reps`` in
microseconds of process CPU per user: the fan-out's steps (a Jira page parsed into
snapshots, their bodies, signing, framing) and the consumer's (reading a delivery's
three frames from a socket, checking the signature, decoding, mapping).

Why: a change of a few microseconds per user is lost in a whole ``bench.bulk_sync``
run on a shared machine; this takes seconds, so the old and new code can be run
alternately, each from its own worktree (``cd WORKTREE && python -m bench.worker_steps``
runs that worktree's code).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from amqp.transport import TCPTransport
from pydantic_core import from_json, to_json

from demo.fake_jira import FakeJira
from schemas.messages import UserSync, user_sync_bodies
from worker.decoding import decode
from worker.framing import Framer
from worker.jira.answers import to_user
from worker.mapping import MappingRules, plan_asset
from worker.signing import Signer, signed_user_syncs

USERS = 1000


def best(step: Callable[[], Any], reps: int) -> float:
    """Best process CPU of ``step`` over ``reps`` runs, in microseconds per user."""
    times = []
    for _ in range(reps):
        started = time.process_time()
        step()
        times.append(time.process_time() - started)
    return min(times) / USERS * 1e6


def read_deliveries(frames: bytes, count: int) -> float:
    """CPU microseconds per delivery for the workers' frame reader to read ``count``
    deliveries (``frames`` each) from a socket written by another process."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        for _ in range(count // 1000):
            theirs.sendall(frames * 1000)
        os._exit(0)
    theirs.close()
    transport: Any = TCPTransport.__new__(TCPTransport)
    transport.sock, transport._quick_recv = ours, ours.recv
    transport._read_buffer, transport.connected, transport.raise_on_initial_eintr = b"", True, True
    started = time.process_time()
    for _ in range(3 * count):
        transport.read_frame()
    used = time.process_time() - started
    os.waitpid(pid, 0)
    ours.close()
    return used / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_steps", description=__doc__)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args(argv)
    jira = FakeJira(flavor="datacenter")
    jira.add_sample_users(USERS)
    page = to_json(jira.users())
    signer = Signer.fixed(b"k" * 32)
    rules = MappingRules(
        field_map={"name": "Username", "displayName": "Name", "emailAddress": "E-mail"},
        user_field="User",
        folder=("Employees",),
        alphabetical=True,
    )
    run_id, now = uuid.uuid4(), datetime.now(UTC)
    users = [to_user(d, flavor="datacenter") for d in from_json(page)]
    bodies = user_sync_bodies(run_id=run_id, dry_run=False, fetched_at=now, users=users)
    out = signed_user_syncs(bodies, exchange="x", signer=signer)
    framer = Framer(channel=1, frame_max=131072, template=out[0])
    decoded = [
        decode("user-sync", m.body, content_type="application/json", max_bytes=1 << 20) for m in out
    ]
    messages = [m for m in decoded if isinstance(m, UserSync)]

    def frames() -> None:
        for m in out:
            framer.frames(m.body, m.headers)

    def checks() -> None:
        for m in out:
            signer.check(m.body, m.headers)

    def plans() -> None:
        for m in messages:
            plan_asset(m.user, rules, seen_at=m.fetched_at)

    steps: dict[str, Callable[[], Any]] = {
        "Jira page to snapshots": lambda: [
            to_user(d, flavor="datacenter") for d in from_json(page)
        ],
        "user-sync bodies": lambda: user_sync_bodies(
            run_id=run_id, dry_run=False, fetched_at=now, users=users
        ),
        "signing": lambda: signed_user_syncs(bodies, exchange="x", signer=signer),
        "framing": frames,
        "signature check": checks,
        "decode": lambda: [
            decode("user-sync", m.body, content_type="application/json", max_bytes=1 << 20)
            for m in out
        ],
        "mapping": plans,
    }
    for name, step in steps.items():
        print(f"{name:24} {best(step, args.reps):6.2f} us per user")
    with contextlib.suppress(ModuleNotFoundError):  # older code: py-amqp's own reader
        importlib.import_module("worker.frame_reader").install_amqp()
    one = framer.frames(out[0].body, out[0].headers)
    assert struct.unpack_from(">B", one)[0] == 1
    print(f"{'reading a delivery':24} {read_deliveries(one, 50_000):6.2f} us per delivery")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

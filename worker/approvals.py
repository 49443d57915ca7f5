"""Carrying out the console's approvals to mark missing what a run found gone.

A run that found more users gone than ``ASSETSYNC_MISSING_LIMIT`` allows marks none of
them; an administrator who confirms on the console that they are gone records an
approval in the asset store (``missing_approvals``), and one worker replica carries it
out in the background, at Jira's pace (about 40 look-ups a second: 10,000 users take
minutes, longer than any HTTP request should):

* every replica looks for an open approval every ``POLL_EVERY`` seconds (one index
  look-up) and the first takes it with a lease, renewed as it goes;
* a batch of the run's waiting users is looked up in Jira again: one Jira has (active
  or not) came back and is left alone; one Jira answers 404 for is marked missing in
  the batch's transaction, unless a login synced their asset since the look-up; one
  Jira refuses to say about is left alone, with the reason, for a later approval;
* that transaction holds the lease (``store.approvals.hold``), records each user's
  outcome and the counts, so a batch is done exactly once whoever did it: a replica
  that stops or dies mid-batch loses only look-ups, which the next one makes again;
* Jira or the asset store not answering pauses the approval (``PAUSE``), saying why
  on the run's page; a stopping replica lets go at once, a killed one when its lease
  lapses (``ASSETSYNC_APPROVAL_LEASE``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.messages import JiraUser
from worker.errors import LostClaim, TransientError
from worker.jira import JiraClient
from worker.missing import Unsure, look_up
from worker.store import Store, mark_missing
from worker.store import approvals as stored
from worker.store.approvals import Approval
from worker.store.sync_settings import audit
from worker.sync_config import LiveSync

log = logging.getLogger(__name__)

BATCH = 100  # users looked up, then settled in one transaction
POLL_EVERY = 5.0  # seconds between two looks for an open approval
PAUSE = 30.0  # seconds an approval rests after Jira or the store did not answer

Answer = JiraUser | Literal["gone"] | Unsure


@dataclass(frozen=True)
class Settled:
    """What a batch did to each of its users."""

    marked: list[str] = field(default_factory=list)
    came_back: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # Jira identity -> why


def settle_batch(
    answers: Mapping[str, Answer],
    assets: Mapping[str, int],
    *,
    changed: set[int],
    active: set[int],
) -> Settled:
    """Each user's outcome from Jira's answer and what marking did to their asset.

    :param answers: Jira's answer per user of the batch.
    :param assets: each user's asset id.
    :param changed: the assets the batch's marking set missing.
    :param active: among the assets of users Jira says are gone, those still active
        after the marking: a login synced them since the look-up, so they came back.
    """
    settled = Settled()
    for jira_id, answer in answers.items():
        if isinstance(answer, Unsure):
            settled.failed[jira_id] = f"Jira did not say whether the user is gone: {answer.reason}"
        elif answer != "gone":
            settled.came_back.append(jira_id)
        elif assets[jira_id] in changed or assets[jira_id] not in active:
            settled.marked.append(jira_id)  # (or found missing already: never marked twice)
        else:
            settled.came_back.append(jira_id)
    return settled


class Approvals:
    """Takes open approvals and carries them out (see the module docstring).

    :param store: the replica's asset store.
    :param jira: the replica's Jira client.
    :param sync_settings: the sync settings in force (the asset type and its active field).
    :param replica: this replica's name, as its claims and heartbeat say it.
    :param lease: seconds a claim lasts unless renewed.
    :param poll_every: seconds between two looks for an open approval.
    :param pause: seconds an approval rests after an outage.
    """

    def __init__(
        self,
        *,
        store: Store,
        jira: JiraClient,
        sync_settings: LiveSync,
        replica: str,
        lease: float,
        poll_every: float = POLL_EVERY,
        pause: float = PAUSE,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.jira = jira
        self.sync_settings = sync_settings
        self.replica = replica
        self.lease = lease
        self.poll_every = poll_every
        self.pause = pause
        self.batch = batch

    def follow(self, stop: threading.Event) -> None:
        """Carry out approvals as they come, until ``stop``."""
        while not stop.wait(self.poll_every):
            try:
                while not stop.is_set() and self.carry_out_one(stop):
                    pass
            except TransientError as exc:  # the store: the next look may work
                log.warning("could not look for approvals to carry out (%s)", exc)
            except Exception:  # never let the thread die silently
                log.exception("carrying out an approval failed")

    def carry_out_one(self, stop: threading.Event) -> bool:
        """Take an open approval and carry it out until done, paused or ``stop``;
        False when there was none to take."""
        with self.store.transaction() as conn:
            approval = stored.claim(conn, replica=self.replica, lease=self.lease)
        if approval is None:
            return False
        log.info(
            "carrying out %s's approval to mark missing the users run %s found gone",
            approval.approved_by,
            approval.run_id,
        )
        try:
            self._work(approval, stop)
        except LostClaim as exc:
            log.warning("%s; another replica carries it on", exc)
        except TransientError as exc:
            log.warning("approval %d paused for %.0f s: %s", approval.id, self.pause, exc)
            try:
                with self.store.transaction() as conn:
                    stored.pause(
                        conn, approval.id, replica=self.replica, error=str(exc), seconds=self.pause
                    )
            except TransientError:
                pass  # the store too: the lease lapses by itself
        return True

    def _work(self, approval: Approval, stop: threading.Event) -> None:
        scheme = self.sync_settings.current().scheme
        renewed = time.monotonic()
        while True:
            with self.store.connection() as conn:
                todo = stored.waiting_users(conn, approval, limit=self.batch)
            if not todo:
                self._finish(approval)
                return
            asked_at = self.store.now()  # before the look-ups: a later sync is newer
            answers: dict[str, Answer] = {}
            for jira_id, _ in todo:
                if stop.is_set():
                    self._let_go(approval)
                    return
                if time.monotonic() - renewed > self.lease / 3:
                    with self.store.transaction() as conn:
                        stored.hold(conn, approval.id, replica=self.replica, lease=self.lease)
                    renewed = time.monotonic()
                answers[jira_id] = look_up(self.jira, jira_id)
            assets = dict(todo)
            with self.store.transaction() as conn:
                stored.hold(conn, approval.id, replica=self.replica, lease=self.lease)
                gone = [assets[j] for j, a in answers.items() if a == "gone"]
                changed = set(mark_missing(conn, scheme, gone, seen_before=asked_at))
                active = stored.still_active(conn, [a for a in gone if a not in changed])
                settled = settle_batch(answers, assets, changed=changed, active=active)
                stored.settle(
                    conn,
                    approval,
                    marked=settled.marked,
                    came_back=settled.came_back,
                    failed=settled.failed,
                )
            renewed = time.monotonic()
            log.info(
                "approval %d: %d marked missing, %d came back, %d not confirmed",
                approval.id,
                len(settled.marked),
                len(settled.came_back),
                len(settled.failed),
            )

    def _finish(self, approval: Approval) -> None:
        with self.store.transaction() as conn:
            stored.hold(conn, approval.id, replica=self.replica, lease=self.lease)
            done = stored.finish(conn, approval.id)
            audit(
                conn,
                actor=done.approved_by,
                action="marked missing (approved)",
                subject=str(done.run_id),
                new={
                    "marked": done.marked,
                    "came back": done.came_back,
                    "failed": done.failed,
                    "approved at": _iso(done.approved_at),
                    "carried out by": self.replica,
                },
            )
        log.info(
            "approval %d of run %s done: %d marked missing, %d came back, %d failed",
            done.id,
            done.run_id,
            done.marked,
            done.came_back,
            done.failed,
        )

    def _let_go(self, approval: Approval) -> None:
        with self.store.transaction() as conn:
            stored.release(conn, approval.id, replica=self.replica)
        log.info("stopping: approval %d left for another replica", approval.id)


def _iso(value: datetime) -> str:
    return value.isoformat()

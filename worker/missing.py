"""The end of a bulk run's fan-out: which assets' users are gone, confirmed by Jira.

A scan can leave a user out without that user having gone: a listing the service
account may not see all of, a directory being synchronised, a page Jira returns short,
a username the search cannot reach (``worker/directory.py``). So at the end of an
unfiltered run, each active asset whose user the scan did not reach is looked up in
Jira by its user's stable identity (Data Center: ``/user?key=``; Cloud:
``/user?accountId=``):

* Jira returns the user: they are synced like any user of the run (a ``user-sync``
  message with the answer, counted in the run); if Jira says inactive, the asset's
  active field follows, as for any deactivated user.
* Jira answers 404: the user is confirmed gone, and counted in the run's ``missing``.
* anything else: nothing is concluded. A transient error (429, 5xx, timeout) is asked
  again after a wait (the fan-out's patient client), then fails the fan-out step
  transiently, so the request is retried and the look-ups made again; a refusal for
  one user (400) leaves that asset as it is.

Only after every look-up has an answer are the confirmed assets marked missing (state
``missing``, active field false, in one transaction), and only if there are at most
``ASSETSYNC_MISSING_LIMIT`` of them: above it nothing is marked, and the run, once its
users are synced, ends failed with one line that says why. A dry run looks up, counts
and checks the limit the same way, and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from schemas.messages import JiraUser, user_sync_bodies
from worker.directory import read_ahead
from worker.errors import InvalidMessage, JiraRejected, UserNotFound
from worker.handling import Loop
from worker.jira import JiraClient, RefKind, UserRef
from worker.settings import MissingLimit
from worker.signing import Signer, signed_user_syncs
from worker.store import Scheme, Store, runs
from worker.store.run_missing import record_gone

log = logging.getLogger(__name__)

LOOKUPS_PER_BATCH = 100  # unreached assets read, looked up and published at a time
# Past the limit nothing is marked, but the look-ups go on, so that the console can list
# every user Jira confirmed gone for an administrator to approve; past this many they
# stop (a list that long is a wrong Jira, not people to approve one by one).
APPROVAL_CAP = 10_000


@dataclass(frozen=True)
class _Confirmed:
    gone: list[tuple[int, str]]  # (asset id, Jira identity) of users Jira answered 404 for
    checked: int  # look-ups made
    assets: int  # assets of the type when the look-ups began
    over_limit: bool  # more than the limit are gone: none is marked
    complete: bool = True  # every unreached asset was looked up (not stopped at the cap)


class MissingUsers:
    """Ends a run's fan-out, confirming with Jira before anything is marked missing.

    :param store: the replica's asset store.
    :param scheme: the asset type being synced.
    :param exchange: where ``user-sync`` messages are published.
    :param mark: mark confirmed assets missing (``ASSETSYNC_MISSING_USERS=mark``), or
        only count them (``ignore``; the limit then does not apply).
    :param limit: ``ASSETSYNC_MISSING_LIMIT``.
    :param signer: signs the ``user-sync`` messages, which workers trust only signed.
    """

    def __init__(
        self,
        *,
        store: Store,
        scheme: Scheme,
        exchange: str,
        mark: bool,
        limit: MissingLimit,
        signer: Signer,
    ) -> None:
        self.store = store
        self.scheme = scheme
        self.exchange = exchange
        self.mark = mark
        self.limit = limit
        self.signer = signer

    def end_fan_out(
        self, run_id: UUID, *, jira: JiraClient, dry_run: bool, unfiltered: bool, loop: Loop
    ) -> None:
        """Call once the scan is complete. A filtered run says nothing about users
        outside its filter: it goes straight on to processing.

        :raises TransientError: Jira could not answer a look-up; nothing was marked,
            and the request should be retried.
        """
        if not unfiltered:
            with self.store.transaction() as conn:
                runs.end_fan_out(conn, run_id)
            return
        found = self._confirm(run_id, jira=jira, dry_run=dry_run, loop=loop)
        if found.over_limit:
            error = self._limit_error(found, dry_run=dry_run)
            log.error("bulk run %s failed: %s", run_id, error)
            with self.store.transaction() as conn:
                runs.record_missing(conn, run_id, missing=len(found.gone), checked=found.checked)
                record_gone(conn, run_id, found.gone, marked=())
                runs.end_fan_out(conn, run_id, error=error)
            return
        with self.store.transaction() as conn:
            marked: list[int] = []
            if self.mark and not dry_run:
                marked = runs.mark_missing(conn, run_id, self.scheme, [a for a, _ in found.gone])
            record_gone(conn, run_id, found.gone, marked=marked)
            runs.record_missing(conn, run_id, missing=len(found.gone), checked=found.checked)
            runs.end_fan_out(conn, run_id)
        if found.checked:
            log.info(
                "bulk run %s: looked up %d users the scan did not reach; %d gone from Jira",
                run_id,
                found.checked,
                len(found.gone),
            )

    def _confirm(self, run_id: UUID, *, jira: JiraClient, dry_run: bool, loop: Loop) -> _Confirmed:
        with self.store.connection() as conn:
            assets = runs.count_assets(conn, self.scheme)
        limit = self.limit.of(assets)
        gone: list[tuple[int, str]] = []
        checked, after, over = 0, 0, False
        while True:
            with self.store.connection() as conn:
                batch = runs.unreached_assets(
                    conn, run_id, self.scheme, after=after, limit=LOOKUPS_PER_BATCH
                )
            if not batch:
                return _Confirmed(gone, checked, assets, over_limit=over)
            fetched_at = self.store.now()  # before the look-ups: never newer than their answers
            present: list[JiraUser] = []
            # Each look-up in a thread of its own, while this one keeps the broker
            # connection alive: a slow answer or a Retry-After wait must not cost it.
            looked_up = read_ahead(
                ((asset_id, jira_id, _look_up(jira, jira_id)) for asset_id, jira_id in batch),
                idle=loop.tick,
            )
            for asset_id, jira_id, answer in looked_up:
                loop.tick()
                checked += 1
                if isinstance(answer, JiraUser):
                    present.append(answer)
                elif answer == "gone":
                    gone.append((asset_id, jira_id))
                    over = over or (self.mark and len(gone) > limit)
                    if over and len(gone) > APPROVAL_CAP:
                        self._publish(run_id, dry_run, fetched_at, present, loop)
                        return _Confirmed(gone, checked, assets, over_limit=True, complete=False)
            self._publish(run_id, dry_run, fetched_at, present, loop)
            after = batch[-1][0]

    def _publish(
        self,
        run_id: UUID,
        dry_run: bool,
        fetched_at: datetime,
        users: Sequence[JiraUser],
        loop: Loop,
    ) -> None:
        """Sync the users Jira still has, as part of the run: recorded, then published."""
        if not users:
            return
        with self.store.transaction() as conn:
            todo = runs.add_matched(conn, run_id, [u.jira_id for u in users])
        bodies = user_sync_bodies(
            run_id=run_id,
            dry_run=dry_run,
            fetched_at=fetched_at,
            users=[u for u in users if u.jira_id in todo],
        )
        loop.publish(signed_user_syncs(bodies, exchange=self.exchange, signer=self.signer))

    def _limit_error(self, found: _Confirmed, *, dry_run: bool) -> str:
        limit = self.limit.of(found.assets)
        share = "" if self.limit.count is not None else f" ({limit} of {found.assets} assets)"
        return (
            f"Jira says the users of more than {limit} {self.scheme.asset_type} assets are"
            f" gone, more than ASSETSYNC_MISSING_LIMIT={self.limit.text} allows{share}:"
            f" {'would mark' if dry_run else 'marked'} none missing (is ASSETSYNC_JIRA_URL"
            " the right Jira, and may its account see every user? if so, raise the limit)"
        )


@dataclass(frozen=True)
class Unsure:
    """Jira would not say whether a user is gone (it refused the look-up)."""

    reason: str


def look_up(jira: JiraClient, jira_id: str) -> JiraUser | Literal["gone"] | Unsure:
    """The user by stable identity, or whether Jira confirmed they are gone (404) or
    would not say.

    :raises TransientError: Jira could not answer now.
    """
    kind: RefKind = "account_id" if jira.flavor == "cloud" else "user_key"
    try:
        return jira.fetch_user(UserRef(kind, jira_id))
    except UserNotFound:
        return "gone"
    except (JiraRejected, InvalidMessage) as exc:
        return Unsure(str(exc))


def _look_up(jira: JiraClient, jira_id: str) -> JiraUser | Literal["gone", "unsure"]:
    answer = look_up(jira, jira_id)
    if isinstance(answer, Unsure):
        log.warning(
            "cannot confirm whether user %r is gone (%s); left as it is", jira_id, answer.reason
        )
        return "unsure"
    return answer

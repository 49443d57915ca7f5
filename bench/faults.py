"""Recovery from faults, measured: ``python -m bench.faults [--fault F] [--phase P] [--json]``.

Runs the fault suite's scenarios (``lab/faults.py``) and times them instead of only
checking them: a bulk run of 3,000 users with logins, on a RabbitMQ node of its own (this
needs root, to run it as user ``rabbitmq``) and the local PostgreSQL, two workers, the
fault injected while the request fans out or while its per-user messages are processed.

Figures per scenario:

* recovered in: from the moment the fault is over (the broker is back, the storm served,
  the connections silenced, the database connections killed...) until a login published at that
  moment, for a user whose Jira data changed, shows the new data in ``user_assets``;
* run done after: from the bulk request to the run's end (the run without a fault, for
  comparison, is the ``none`` row); after the fault: from the fault's end to the run's end;
* logins held: from the fault's end until every login published during the fault shows
  its new data;
* checks: the fault suite's (run done with exact counts, one asset per user, every login's
  latest data, no dead letter, queues drained, workers running).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from lab.faults import (
    FAULTS,
    PAIR_FAULTS,
    PHASES,
    USERS,
    Lab,
    Outcome,
    own_rabbit_possible,
    rabbit_node,
)
from lab.pg_pair import pair_possible, postgres_pair
from lab.servers import LOCAL_DATABASE


def checks(outcome: Outcome) -> list[str]:
    """What the fault suite would fail on, in words (empty: all good)."""
    run, failed = outcome.run, []
    if run["state"] != "done":
        failed.append(f"run {run['state']}: {run['error']}")
    if (run["matched"], run["done"], run["failed"]) != (USERS, USERS, 0):
        failed.append(f"counts {run['matched']}/{run['done']}/{run['failed']}")
    if not outcome.assets == outcome.distinct_assets == USERS:
        failed.append(f"{outcome.assets} assets, {outcome.distinct_assets} distinct")
    if outcome.stale_logins:
        failed.append(f"stale logins {outcome.stale_logins}")
    if outcome.dead_letters:
        failed.append(f"{outcome.dead_letters} dead letters")
    if outcome.queues_left:
        failed.append(f"queues left {outcome.queues_left}")
    if outcome.workers_running != 2:
        failed.append(f"{outcome.workers_running} workers running")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--fault", action="append", choices=["none", *FAULTS, *PAIR_FAULTS])
    parser.add_argument("--phase", action="append", choices=PHASES)
    parser.add_argument("--database-url", default=LOCAL_DATABASE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    why_not = own_rabbit_possible()
    if why_not:
        print(f"bench.faults: {why_not}", file=sys.stderr)
        return 2
    faults = args.fault or ["none", *FAULTS, *([] if pair_possible() else PAIR_FAULTS)]
    results = []
    with rabbit_node() as node:
        for fault in faults:
            for phase in args.phase or PHASES:
                with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as stack:
                    pair = stack.enter_context(postgres_pair()) if fault in PAIR_FAULTS else None
                    lab = Lab(
                        node=node, database_url=args.database_url, workdir=Path(workdir), pair=pair
                    )
                    try:
                        outcome = lab.run(fault, phase)
                    finally:
                        lab.close()
                result = {**asdict(outcome), "failed_checks": checks(outcome)}
                results.append(result)
                if not args.json:
                    print(
                        f"{fault:20} {phase:12} recovered in {outcome.recovered_in:5.1f} s"
                        f"   logins held {outcome.held_logins_in:5.1f} s"
                        f"   run done after {outcome.finished_in:5.1f} s"
                        f" ({outcome.done_after_fault:5.1f} s after the fault)"
                        f"   jira faults {outcome.jira_faults_served:2} repeats"
                        f" {outcome.jira_repeats:2}"
                        f"   {'; '.join(result['failed_checks']) or 'checks ok'}",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(results, default=str, indent=2))
    return 0 if all(not r["failed_checks"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""A real database failover: a PostgreSQL primary and its standby of the test's own
(``lab/pg_pair.py``), workers on a multi-host URL with ``target_session_attrs=
read-write``, the primary stopped (immediate) and the standby promoted while a bulk run
of thousands of users fans out or is processed and logins arrive.

What a user checks, as in the rest of the fault suite: the run ends ``done`` with exact
counts, one asset per user, every login's latest data, nothing dead-lettered, every
queue drained, both workers running. Replication is synchronous here, so that no commit
the workers were told of is lost with the primary (see docs/faults.md for
the guarantee with asynchronous replication). ``python -m bench.faults --fault
switchover`` times it.
"""

from __future__ import annotations

import pytest

from lab.faults import PHASES, USERS, Lab, RabbitNode, own_rabbit_possible, rabbit_node
from lab.pg_pair import pair_possible, postgres_pair

why_not = own_rabbit_possible() or pair_possible()
pytestmark = pytest.mark.skipif(why_not is not None, reason=str(why_not))


@pytest.fixture(scope="module")
def node():
    with rabbit_node() as found:
        yield found


@pytest.mark.parametrize("phase", PHASES)
def test_a_bulk_run_with_logins_rides_out_a_switchover_whole(
    node: RabbitNode, infra, tmp_path, phase: str
):
    with postgres_pair(synchronous=True) as pair:
        lab = Lab(node=node, database_url=infra.database_url, workdir=tmp_path, pair=pair)
        try:
            outcome = lab.run("switchover", phase)
        finally:
            lab.close()
    run = outcome.run
    assert run["state"] == "done", run["error"]
    assert (run["matched"], run["done"], run["failed"]) == (USERS, USERS, 0)
    assert outcome.assets == outcome.distinct_assets == USERS
    assert outcome.stale_logins == []
    assert outcome.dead_letters == 0
    assert outcome.queues_left == {}
    assert outcome.workers_running == 2
    assert pair.primary == "b"  # the workers followed the URL to the promoted standby

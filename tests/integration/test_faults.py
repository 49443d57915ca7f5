"""The fault suite: every fault, during a bulk run of thousands of users with logins,
both while the request fans out and while its per-user messages are processed.

For each, what a user checks: the run ends ``done`` with exact counts, one asset per
user, every login's latest Jira data shown, nothing dead-lettered, every queue drained,
and the workers still running (they reconnect rather than exit). No timing is asserted
here; ``python -m bench.faults`` measures the recovery times for docs/faults.md.
"""

from __future__ import annotations

import pytest

from lab.faults import FAULTS, PHASES, USERS, Lab, RabbitNode, own_rabbit_possible, rabbit_node

pytestmark = pytest.mark.skipif(
    own_rabbit_possible() is not None, reason=str(own_rabbit_possible())
)


@pytest.fixture(scope="module")
def node():
    with rabbit_node() as found:
        yield found


@pytest.fixture
def lab(node: RabbitNode, infra, tmp_path):
    try:
        node.ctl("status")
    except RuntimeError:  # a scenario before this one failed with the node down
        node.start()
    found = Lab(node=node, database_url=infra.database_url, workdir=tmp_path)
    yield found
    found.close()


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_bulk_run_with_logins_comes_through_the_fault_whole(lab: Lab, fault: str, phase: str):
    outcome = lab.run(fault, phase)

    run = outcome.run
    assert run["state"] == "done", run["error"]
    assert (run["matched"], run["done"], run["failed"]) == (USERS, USERS, 0)
    assert outcome.assets == outcome.distinct_assets == USERS
    assert outcome.stale_logins == []
    assert outcome.dead_letters == 0
    assert outcome.queues_left == {}
    assert outcome.workers_running == 2
    if fault == "jira-storm":
        assert outcome.jira_faults_served == 25
        # Each fault served costs at most one repeated request, never a rescan.
        assert outcome.jira_repeats <= outcome.jira_faults_served

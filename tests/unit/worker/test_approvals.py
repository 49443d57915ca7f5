"""What carrying out an approval to mark missing decides for each user of a batch
(pure: no server)."""

from __future__ import annotations

from schemas.messages import JiraUser
from worker.approvals import settle_batch
from worker.missing import Unsure


def user(jira_id: str, active: bool = True) -> JiraUser:
    return JiraUser(jira_id=jira_id, key=jira_id, name=jira_id.lower(), active=active)


def test_only_users_still_gone_whose_asset_was_not_synced_since_are_marked():
    answers = {
        "GONE": "gone",
        "BACK": user("BACK"),
        "BACK_INACTIVE": user("BACK_INACTIVE", active=False),  # Jira has them: not gone
        "SYNCED_SINCE": "gone",  # a login synced the asset after the look-up
        "ALREADY": "gone",  # marked missing by something else meanwhile
        "REFUSED": Unsure("Jira answered 400"),
    }
    assets = {name: n for n, name in enumerate(answers)}
    settled = settle_batch(
        answers, assets, changed={assets["GONE"]}, active={assets["SYNCED_SINCE"]}
    )
    assert settled.marked == ["GONE", "ALREADY"]
    assert settled.came_back == ["BACK", "BACK_INACTIVE", "SYNCED_SINCE"]
    assert settled.failed == {
        "REFUSED": "Jira did not say whether the user is gone: Jira answered 400"
    }

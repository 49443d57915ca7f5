"""The fake Jira's listings behave as Jira's do, since the scan's tests rely on it:
what the DC user search matches, in which order, up to which cap; hidden users; short
Cloud pages."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo.fake_jira import FakeJira


@pytest.fixture
def dc() -> Iterator[FakeJira]:
    with FakeJira(flavor="datacenter", has_user_list=False) as fake:
        yield fake


def get(fake: FakeJira, path: str, **params: object) -> httpx.Response:
    return httpx.get(fake.url + path, params=params, auth=("admin", "secret"))


def search(fake: FakeJira, query: str, **params: object) -> list[str]:
    answer = get(fake, "/rest/api/2/user/search", username=query, **params)
    answer.raise_for_status()
    return [u["name"] for u in answer.json()]


def test_search_matches_the_start_of_username_display_name_words_and_email(dc):
    dc.add_user("jdoe", display_name="Jane van Doe", email="jane.d@example.com")
    dc.add_user("other", display_name="Someone Else", email="x@example.com")
    for query in ("JD", "jane", "VAN", "doe", "jane v", "jane.d"):
        assert search(dc, query) == ["jdoe"], query
    for query in ("oe", "example", "ane"):  # not the middle of a word
        assert search(dc, query) == [], query


def test_search_reads_a_dot_as_everyone_and_keeps_only_active_users_unless_asked(dc):
    dc.add_user("a", display_name="A")
    dc.add_user("b", display_name="B", active=False)
    assert search(dc, ".") == ["a"]
    assert search(dc, ".", includeInactive="true") == ["a", "b"]
    assert search(dc, ".", includeActive="false", includeInactive="true") == ["b"]


def test_search_returns_the_first_thousand_matches_in_display_name_order(dc):
    dc.add_users({"name": f"m{i:04d}", "display_name": f"Zed {1199 - i:04d}"} for i in range(1200))
    dc.add_user("mary", display_name="Aaron Mary")
    names = []
    while page := search(dc, "m", startAt=len(names), maxResults=300):
        names += page
    assert len(names) == 1000  # and no more, whatever startAt says
    assert names[0] == "mary"  # display name first: "Aaron Mary" < "Zed ..."
    assert names[1:3] == ["m1199", "m1198"]
    assert search(dc, "m", startAt=1000) == []


def test_search_compares_as_jira_lower_cases(dc):
    dc.add_user("Straße", display_name="S")
    dc.add_user("ÉMILIE", display_name="E")
    assert search(dc, "straß") == ["Straße"]
    assert search(dc, "strass") == []  # lower-cased, not case-folded
    assert search(dc, "é") == ["ÉMILIE"]


def test_hidden_users_are_left_out_of_listings_but_found_directly():
    with FakeJira(flavor="datacenter", has_user_list=True) as fake:
        fake.add_user("seen", display_name="Seen", groups=["staff"])
        ghost = fake.add_user("ghost", display_name="Ghost", groups=["staff"], hidden=True)
        assert search(fake, ".") == ["seen"]
        assert [u["name"] for u in get(fake, "/rest/api/2/user/list").json()["values"]] == ["seen"]
        members = get(fake, "/rest/api/2/group/member", groupname="staff").json()["values"]
        assert [u["name"] for u in members] == ["seen"]
        assert get(fake, "/rest/api/2/user", key=ghost["key"]).json()["name"] == "ghost"


def test_cloud_pages_can_come_back_short_while_more_follow():
    with FakeJira(flavor="cloud", cloud_short_pages=2) as cloud:
        cloud.add_sample_users(10)
        first = get(cloud, "/rest/api/3/users/search", startAt=0, maxResults=5).json()
        assert len(first) == 3
        following = get(cloud, "/rest/api/3/users/search", startAt=3, maxResults=5).json()
        everyone = [u["accountId"] for u in cloud.users()]
        assert [u["accountId"] for u in first + following] == everyone[:6]

"""The directory scan against the fake Jira over HTTP: every user exactly once, whatever
the characters, the cap or the page; checkpoints that are values; resuming anywhere."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from demo import directories
from demo.fake_jira import FakeJira
from worker.checkpoints import (
    CloudPosition,
    GroupPosition,
    ListPosition,
    SearchPosition,
    decode_checkpoint,
    encode_checkpoint,
)
from worker.directory import Filters, jira_lower, read_ahead, scan
from worker.jira import JiraClient

EVERYONE = Filters()


@pytest.fixture
def old_dc() -> Iterator[FakeJira]:
    """Jira Data Center before 10.3: no /user/list, the search capped at 1,000."""
    with FakeJira(flavor="datacenter", has_user_list=False) as fake:
        yield fake


@pytest.fixture
def client_of() -> Iterator:
    made: list[JiraClient] = []

    def make(fake: FakeJira) -> JiraClient:
        made.append(JiraClient(base_url=fake.url, username="admin", token="secret"))
        return made[-1]

    yield make
    for client in made:
        client.close()


def scanned(jira: JiraClient, filters: Filters = EVERYONE, **kw) -> Counter[str]:
    """How many times the scan gave each user."""
    return Counter(u.jira_id for page in scan(jira, filters, **kw) for u in page.users)


def keys(fake: FakeJira, keep=lambda u: True) -> set[str]:
    return {u["key"] for u in fake.users() if keep(u)}


def once(counts: Counter[str]) -> set[str]:
    assert [k for k, n in counts.items() if n > 1] == []
    return set(counts)


# -- every user exactly once -------------------------------------------------------------


def test_old_data_center_with_non_ascii_usernames_gives_every_user_exactly_once(old_dc, client_of):
    old_dc.add_sample_users(5000, inactive_every=10, native_every=20)
    names = [u["name"] for u in old_dc.users()]
    assert any(n.startswith("émilie.") for n in names) and any("李" in n for n in names)

    got = scanned(client_of(old_dc), page_size=1000)

    assert once(got) == keys(old_dc)
    # Far below one request per user (measured figures: bench.scan, in bench/README.md).
    assert len(old_dc.request_log) < 0.1 * 5000


@pytest.mark.parametrize(
    ("cap", "page_limit"),
    [
        # Data Center 10.0-10.2 (a cap of 100): a bulk run in test_scan_completeness.
        (251, 1000),  # any other cap: learnt from the answers, not assumed
        (1000, 50),  # pages cut shorter than asked are not a cap
    ],
)
def test_whatever_the_search_cap_every_user_is_given_exactly_once(client_of, cap, page_limit):
    with FakeJira(
        flavor="datacenter", has_user_list=False, search_cap=cap, max_page=page_limit
    ) as fake:
        fake.add_users(directories.varied(3000))

        got = scanned(client_of(fake), page_size=1000)

        assert once(got) == keys(fake)


def test_more_than_a_thousand_users_sharing_every_prefix_are_each_found_once(old_dc, client_of):
    old_dc.add_sample_users(300)
    old_dc.add_users(directories.tower(1500))
    names = {u["name"] for u in old_dc.users()}
    stem = "Q.q-q_q'q+q@"
    # The stem and two of its prefixes are usernames; one username is 200 longer.
    assert {stem, stem[:3], stem[:7], stem + "x" * 200} <= names

    got = scanned(client_of(old_dc), page_size=100)

    assert once(got) == keys(old_dc)


def test_characters_hidden_behind_the_cap_are_learnt_from_other_answers(old_dc, client_of):
    old_dc.add_sample_users(400)
    old_dc.add_users(directories.behind_the_cap(1200))
    unreachable = {u["key"] for u in old_dc.users() if u["name"] == directories.UNREACHABLE}

    got = scanned(client_of(old_dc), page_size=1000)

    # Every user, once; except the one whose username, display name and e-mail all
    # start with a capped part followed by a character no answer shows (the residual
    # the module docstring names: the missing-user confirmation protects its asset).
    assert once(got) == keys(old_dc) - unreachable
    hidden_ones = {
        u["name"] for u in old_dc.users() if u["key"] in got and u["name"][1:2] in "ø王ß"
    }
    assert len(hidden_ones) == 9


def test_users_left_out_of_every_listing_are_not_given(old_dc, client_of):
    old_dc.add_sample_users(50)
    ghost = old_dc.add_user("ghost", display_name="Ghost", hidden=True)
    got = scanned(client_of(old_dc), page_size=1000)
    assert once(got) == keys(old_dc) - {ghost["key"]}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("j", {"jörg.müller", "JÖRG2", "josé.jensen", "j.smith"}),
        ("J", {"jörg.müller", "JÖRG2", "josé.jensen", "j.smith"}),
        ("jö", {"jörg.müller", "JÖRG2"}),
        ("é", {"émilie.brown", "Émile"}),
        ("Ł", {"łukasz.nowak"}),
        ("ß", {"ßmith"}),  # Jira lower-cases, it does not case-fold: ß is not ss
        ("ss", {"ssmith"}),
        ("王", {"王芳"}),
    ],
)
def test_prefix_matches_the_start_of_the_username_as_jira_lower_cases_it(
    old_dc, client_of, prefix, expected
):
    # Part "j" is capped, and these users sort behind its first 1,000 matches.
    old_dc.add_users(
        {"name": f"jdoe{i:04d}", "display_name": f"Aaron Doe{i:04d}"} for i in range(1100)
    )
    people = ["jörg.müller", "JÖRG2", "josé.jensen", "j.smith", "émilie.brown", "Émile"]
    people += ["łukasz.nowak", "ßmith", "ssmith", "王芳", "ajörg", "xj"]
    old_dc.add_users({"name": n, "display_name": f"Jo {n}"} for n in people)
    if prefix.lower() == "j":
        expected = expected | {f"jdoe{i:04d}" for i in range(1100)}

    got = scanned(client_of(old_dc), Filters(prefix=prefix), page_size=1000)

    assert once(got) == keys(old_dc, lambda u: u["name"] in expected)


def test_jira_lower_cases_rather_than_case_folds():
    assert jira_lower("STRASSE") == "strasse" and jira_lower("Straße") == "straße"
    assert jira_lower("ẞ") == "ß"  # capital sharp s, as Java's toLowerCase
    assert not jira_lower("ßmith").startswith(jira_lower("ss"))


def test_cloud_pages_that_come_back_short_skip_no_one_and_repeat_no_one(client_of):
    with FakeJira(flavor="cloud", cloud_short_pages=3) as cloud:
        cloud.add_sample_users(2400, app_accounts=30)
        # Accounts the service account may not see: Cloud drops them after cutting
        # the page, so pages come back short while more follow.
        hidden = [u["accountId"] for u in cloud.users()[5:2400:97]]
        for account_id in hidden:
            cloud.update_user(account_id, hidden=True)
        humans = keys_cloud(cloud) - set(hidden)

        got = scanned(client_of(cloud), page_size=100)

        assert once(got) == humans


def test_cloud_users_deleted_between_pages_make_the_scan_skip_no_one(client_of):
    """Offset pages shift when users before them go: each page overlaps the previous one
    and starts after the last of its users it finds, a page earlier if need be."""
    pages = "/users/search"
    with FakeJira(flavor="cloud") as cloud:
        cloud.add_sample_users(1500)
        everyone = keys_cloud(cloud)
        gone: set[str] = set()

        def delete_read(count: int, *, back: int) -> Callable[[], None]:
            """Delete ``count`` users of the page just served, ending ``back`` before its end."""

            def act() -> None:
                start = int(parse_qs(urlsplit(cloud.request_log[-1][1]).query)["startAt"][0])
                listed = [u["accountId"] for u in cloud.users()]
                end = start + 100 - back
                for ident in listed[end - count : end]:
                    gone.add(ident)
                    cloud.remove_user(ident)

            return act

        # Three from the middle of page 2; page 4's last four (the overlap finds the
        # ones before them); fifteen just before page 6's last twenty (more than a
        # page's overlap: it looks a page earlier); page 9's last thirty.
        for page, count, back in ((2, 3, 50), (4, 4, 0), (6, 15, 20), (9, 30, 0)):
            cloud.after_requests(page, delete_read(count, back=back), path_contains=pages)

        got = scanned(client_of(cloud), page_size=100)

        assert len(gone) == 52
        given = once(got)  # nobody twice
        assert everyone - gone - given == set()  # nobody skipped
        assert given <= everyone
        # 17 pages of 90 new users, two requests per look-back, two to see the end.
        assert cloud.request_count(pages) <= 17 + 2 * 2 + 2


def keys_cloud(fake: FakeJira) -> set[str]:
    return {u["accountId"] for u in fake.users() if u["accountType"] == "atlassian"}


# -- checkpoints ---------------------------------------------------------------------------


def test_a_checkpoint_is_a_value_that_later_pages_do_not_change(old_dc, client_of):
    old_dc.add_sample_users(2500)
    pages = list(read_ahead(scan(client_of(old_dc), Filters(), page_size=100)))
    assert len(pages) > 10
    checkpoints = [p.checkpoint for p in pages[:-1]]
    assert all(isinstance(c, SearchPosition) for c in checkpoints)
    frozen = [json.dumps(encode_checkpoint(c)) for c in checkpoints]  # type: ignore[arg-type]
    # Read again after the scan has gone on to the end: unchanged.
    assert [json.dumps(encode_checkpoint(c)) for c in checkpoints] == frozen  # type: ignore[arg-type]
    assert len(set(frozen)) == len(frozen)  # and each says something else
    with pytest.raises(dataclasses.FrozenInstanceError):
        checkpoints[0].pending = ()  # type: ignore[misc, union-attr]
    assert isinstance(checkpoints[0].pending, tuple)  # type: ignore[union-attr]
    assert pages[-1].checkpoint is None


@pytest.mark.parametrize("where", ["search", "cloud", "list", "groups"])
def test_resuming_from_the_checkpoint_of_any_page_gives_every_user_exactly_once(client_of, where):
    """A replica killed after saving page k's checkpoint, while it had already read
    page k + 1 ahead: its successor resumes from page k's checkpoint. For every k."""
    flavor = "cloud" if where == "cloud" else "datacenter"
    with FakeJira(flavor=flavor, has_user_list=where == "list", cloud_short_pages=2) as fake:
        fake.add_sample_users(2500, groups={"staff": 2, "admins": 3})
        if where == "search":
            fake.add_users(directories.tower(1100, stem="ab.c", display_name=None))
        filters = Filters(groups=("staff", "admins")) if where == "groups" else Filters()
        jira = client_of(fake)
        pages = list(read_ahead(scan(jira, filters, page_size=100)))
        everyone = Counter(u.jira_id for p in pages for u in p.users)
        assert len(pages) > 8

        for k, page in enumerate(pages[:-1]):
            before = Counter(u.jira_id for p in pages[: k + 1] for u in p.users)
            stored = decode_checkpoint(json.loads(json.dumps(encode_checkpoint(page.checkpoint))))
            after = scanned(jira, filters, page_size=100, checkpoint=stored)
            assert before + after == everyone, f"resumed after page {k}"
        if where != "groups":  # in two groups, a member of both is given twice
            assert set(everyone) == once(everyone)


def test_checkpoints_round_trip_through_json_and_earlier_formats_still_resume():
    positions = [
        GroupPosition(1, 50),
        ListPosition("YWZ0ZXI6OTk"),
        CloudPosition(300, ("a", "b")),
        SearchPosition(pending=("b", "a"), alphabet="abc王", splits=(("", 4),)),
    ]
    for position in positions:
        assert decode_checkpoint(json.loads(json.dumps(encode_checkpoint(position)))) == position
    # What the previous version stored for groups, /user/list and Cloud.
    assert decode_checkpoint({"group": 1, "start_at": 50}) == GroupPosition(1, 50)
    assert decode_checkpoint({"mode": "list", "cursor": "c"}) == ListPosition("c")
    assert decode_checkpoint({"start_at": 7}) == CloudPosition(7)
    # Its search checkpoint cannot be trusted (it could describe later pages): start over.
    assert decode_checkpoint({"mode": "search", "pending": ["a"], "start_at": 0}) is None
    assert decode_checkpoint({"mode": "search", "version": 2, "pending": 5}) is None
    assert decode_checkpoint("garbage") is None

"""What Jira's answers say about the user search's cap (``worker/partition.py``), decided
without a server: a simulated ``/user/search`` with a cap and a page limit of its own."""

from __future__ import annotations

import pytest

from worker.checkpoints import SearchPosition
from worker.partition import Partition


class Search:
    """A query's matches as Jira serves them: at most ``cap`` reachable
    (``startAt + maxResults`` cut at it) and at most ``page`` a request."""

    def __init__(self, *, cap: int, page: int = 1000) -> None:
        self.cap, self.page, self.requests = cap, page, 0

    def run(self, partition: Partition, part: str, matches: int, size: int = 1000) -> int:
        """Read one query of ``matches`` users as ``worker.directory._search`` does; the
        total it returned."""
        total = 0
        while (asked := partition.page_size(total, size)) > 0:
            self.requests += 1
            got = max(0, min(asked, self.page, self.cap - total, matches - total))
            total += got
            if not partition.more_after(got=got, asked=asked, total=total):
                break
        return total

    def capped(self, partition: Partition, part: str, matches: int, size: int = 1000) -> bool:
        total = self.run(partition, part, matches, size)
        return partition.capped(part, total, [f"{part}{i}" for i in range(total)])


@pytest.mark.parametrize("cap", [1000, 100, 137, 1])
def test_a_query_that_reaches_the_cap_is_split_and_one_below_it_is_not(cap):
    search, partition = Search(cap=cap), Partition("", None)
    assert search.capped(partition, "", matches=50_000)  # the root: everyone
    assert search.capped(partition, "a", matches=cap + 5)
    assert not search.capped(partition, "b", matches=cap - 1)
    assert partition.ceiling == cap


def test_a_directory_smaller_than_the_cap_costs_one_split_and_nothing_is_taken_on_a_guess():
    search, partition = Search(cap=1000), Partition("", None)
    # 700 users: as far as the answers tell, the cap might be 700.
    assert search.capped(partition, "", matches=700)
    children = [search.capped(partition, c, matches=n) for c, n in (("a", 90), ("b", 40))]
    assert children == [False, False]  # below what the root returned: complete


def test_a_server_that_cuts_pages_shorter_than_asked_is_not_taken_for_a_cap():
    search, partition = Search(cap=1000, page=50), Partition("", None)
    assert search.run(partition, "", matches=5000) == 1000  # 20 pages of 50, then empty
    assert search.requests == 21
    partition.capped("", 1000, [])
    assert search.run(partition, "a", matches=120) == 120  # a short page of 20 ends it
    assert search.requests == 21 + 3


def test_a_short_page_ends_its_query_without_the_empty_page_once_answers_allow():
    search, partition = Search(cap=100), Partition("", None)
    assert search.capped(partition, "", matches=3000)
    assert search.requests == 2  # 100 of 1000 asked, then an empty page: maybe capped
    before = search.requests
    assert not search.capped(partition, "a", matches=37)
    assert search.requests == before + 1  # 37 < 100 seen on one page, < the ceiling


def test_an_answer_that_shows_a_user_the_capped_query_left_out_proves_the_cap():
    search, partition = Search(cap=100), Partition("", None)
    assert search.capped(partition, "", matches=3000)
    assert partition.cap is None
    partition.witness([("0", "ann"), ("elsewhere", "bob")])  # "bob" matches "" too
    assert partition.cap == 100
    before = search.requests
    assert search.capped(partition, "a", matches=250)
    assert search.requests == before + 1  # 100 users: capped, no empty page asked


def test_users_who_do_not_belong_to_the_suspect_query_prove_nothing():
    search, partition = Search(cap=100), Partition("jo", None)
    assert search.capped(partition, "jo", matches=3000)
    partition.witness([("x", "ann"), ("y", "bjorn")])  # not "jo…": not its matches
    partition.witness([("jo0", "jo.smith")])  # one it returned
    assert partition.cap is None


def test_what_was_learnt_survives_a_checkpoint_and_an_old_checkpoint_learns_it_again():
    search, partition = Search(cap=137), Partition("", None)
    search.capped(partition, "", matches=3000)
    partition.witness([("new", "zed")])
    resumed = Partition("", partition.position())
    assert (resumed.ceiling, resumed.widest, resumed.cap) == (137, 137, 137)
    old = Partition("", SearchPosition(pending=("a",), alphabet="ab", splits=(("", 2),)))
    assert search.capped(old, "a", matches=500)  # knows nothing: splits rather than guess

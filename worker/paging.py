"""Offset paging that a directory changing between two pages cannot make skip anyone:
a pure decision about where the new users of a page begin.

Cloud's ``/users/search`` pages by ``startAt``. A user deleted between two requests
shifts everyone after them one place to the front, so the next page, asked for at the
offset the previous one ended at, starts one user too late: that user is never read.
So each page is asked for a few users early, re-reading the last ``OVERLAP`` users of
the previous page, and its new users are those after the latest user of the previous
page's *tail* (its last ``REMEMBERED`` users) found in it. Users deleted before the tail
move it to the front, where it is still found; users added move it back; tail users
deleted themselves leave the earlier ones to be found. When no tail user is in the page
at all (more were deleted before it than the overlap re-reads), the page is asked for
again a page earlier, down to the first. A user given twice is harmless (a run counts
each user once); a user skipped is not.
"""

from __future__ import annotations

from collections.abc import Sequence

OVERLAP = 10  # users of the previous page read again, to find where the next page begins
REMEMBERED = 100  # users of the previous page looked for in the next one (kept in checkpoints)


def overlap_for(page_size: int) -> int:
    """How many users of each page are read again: at least one new user per page."""
    return max(0, min(OVERLAP, page_size - 1))


def new_from(ids: Sequence[str], tail: Sequence[str]) -> int | None:
    """Where the users not yet read begin in a page of ``ids``, given the ``tail`` of the
    previous page (its last users, in order): just after the latest tail user the page
    holds. 0 without a tail; None when the page holds none of it (look a page earlier)."""
    if not tail:
        return 0
    at = {ident: i for i, ident in enumerate(ids)}
    for ident in reversed(tail):
        if ident in at:
            return at[ident] + 1
    return None

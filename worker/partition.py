"""The partitioned user search's working state, and what Jira's answers say about its
cap: pure decisions, no I/O (``worker/directory.py`` asks Jira and feeds the answers in).

**The cap is learnt, not assumed.** ``/user/search`` returns only the first *C* matches
of a query, and says neither *C* nor how many matched: *C* is 1,000 before Jira 10
(JRASERVER-65089) and 100 on Data Center 10.0-10.2 (``startAt + maxResults`` is cut at
100: JRASERVER-78520), and a server may also cut each page shorter than asked. So a
query is read page by page until Jira gives an empty page, and each query's *total*
(what it returned in all) is weighed against what every answer so far has shown:

* no query returns more than *C*, so *C* is at least the **ceiling**, the largest total
  seen. A total below the ceiling is therefore complete: its part is kept.
* a total that reaches the ceiling may be capped (or may be exactly everything): its
  part is split, which is never wrong, only dearer. So a directory smaller than the cap
  costs one split more than it would need, and nothing is ever taken for complete on
  a guess, whatever *C* is (1,000, 100, 137, …).
* the cap is **proven** once an answer shows a user who matches an earlier split
  query without having been among its results: that query was cut, so *C* is exactly
  its total. From then on a query is taken as capped as soon as it has returned *C*
  users, without asking for the empty page behind them.
* a page shorter than asked ends its query without the empty page behind it when it is
  shorter than a page Jira has already returned (so the server did not cut the page)
  and its query's total is below the ceiling (so the cap did not cut it either).

Each answer can only raise the ceiling, and a proof only ever finds the true cap or,
if users were added meanwhile, a lower one, which makes more parts split: safe both ways.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.checkpoints import SearchPosition

# The characters every capped search part is split by; those seen in usernames join.
BASE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789._-@'+"


class Partition:
    """The working state of a partitioned search; ``position()`` is its value.

    :param root: the part the search starts from (the run's lower-cased prefix, or "").
    :param at: where a resumed search stands; None to start.
    """

    def __init__(self, root: str, at: SearchPosition | None) -> None:
        at = at or SearchPosition(pending=(root,), alphabet=BASE_ALPHABET, splits=())
        self.pending = list(at.pending)
        self.alphabet = at.alphabet
        self.known = set(at.alphabet)
        self.splits = dict(at.splits)
        self.ceiling, self.widest, self.cap = at.ceiling, at.widest, at.cap
        # The first query taken for capped while the cap is unproven: its part and the
        # users it returned, until an answer shows a user of that part it left out.
        self._suspect: tuple[str, int, frozenset[str]] | None = None

    def position(self) -> SearchPosition:
        return SearchPosition(
            tuple(self.pending),
            self.alphabet,
            tuple(sorted(self.splits.items())),
            self.ceiling,
            self.widest,
            self.cap,
        )

    # -- which part next -------------------------------------------------------------------

    def next_part(self) -> str | None:
        if not self.pending:
            # Characters learnt after a part was split: give it children for them too.
            for part, covered in sorted(self.splits.items(), reverse=True):
                if covered < len(self.alphabet):
                    self._push_children(part, self.alphabet[covered:])
                    self.splits[part] = len(self.alphabet)
        return self.pending.pop() if self.pending else None

    def learn(self, usernames: Iterable[str]) -> None:
        for name in usernames:
            for char in name:
                if char not in self.known:
                    self.known.add(char)
                    self.alphabet += char

    def split(self, part: str) -> None:
        self.splits[part] = len(self.alphabet)
        self._push_children(part, self.alphabet)

    def _push_children(self, part: str, chars: str) -> None:
        self.pending.extend(part + c for c in sorted(chars, reverse=True))

    # -- the cap ---------------------------------------------------------------------------

    def page_size(self, total: int, size: int) -> int:
        """``maxResults`` for a query's next page, after ``total`` users; 0: ask no more."""
        if self.cap is not None:
            return max(0, min(size, self.cap - total))
        return size

    def more_after(self, *, got: int, asked: int, total: int) -> bool:
        """Whether a query that just returned ``got`` of ``asked`` users (``total`` in all
        so far) may have more behind them: then its next page is asked for."""
        if got == 0 or (self.cap is not None and total >= self.cap):
            return False
        short_on_its_own = got < asked and got < self.widest and total < self.ceiling
        self.widest = max(self.widest, got)
        return not short_on_its_own

    def capped(self, part: str, total: int, ids: Iterable[str]) -> bool:
        """Record a query's total (``ids``: the users it returned); whether its part must
        be split, because the cap may have cut it."""
        self.ceiling = max(self.ceiling, total)
        bound = self.cap if self.cap is not None else self.ceiling
        if total == 0 or total < bound:
            return False
        if self.cap is None and self._suspect is None:
            self._suspect = (part, total, frozenset(ids))
        return True

    def witness(self, users: Iterable[tuple[str, str]]) -> None:
        """Users (identity, lower-cased username) of any answer: one that the suspect
        query should have returned and did not proves the cap."""
        if self._suspect is None or self.cap is not None:
            return
        part, total, returned = self._suspect
        if any(name.startswith(part) and ident not in returned for ident, name in users):
            self.cap, self._suspect = total, None

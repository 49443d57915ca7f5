"""Jira requests per user of a Data Center directory scan without ``/user/list``.

``python -m bench.scan [--users 5000 100000] [--directory sample varied] [--cap 1000 100]
[--json]``

For each size, directory and search cap: the fake Jira (Data Center, no ``/user/list``, as
before Jira 10.3; its search returning only the first ``--cap`` matches: 1,000 as Jira
before 10, 100 as Data Center 10.0-10.2) gets the directory, and ``worker.directory.scan``
reads every user through the partitioned ``/user/search`` over HTTP, with the worker's
default page size (1,000), exactly as the fan-out does (without broker or database: this
measures the scan alone). Afterwards the result is checked: every user of the directory
exactly once. Printed: the requests the fake Jira served, by kind, and per user; the
search's alphabet and how many parts hit the cap; the wall time (the fake Jira runs in
this process, so the time says little about a real Jira; the request count is the
figure).

Directories: ``sample`` is the fake Jira's sample directory (50 given names and 54
surnames, so at 100,000 people every name is shared by about 2,000 of them: the search
meets the cap along every name) with one person in twenty keeping the letters of a
non-English name in the username (``émilie.brown``, ``王芳``), one in ten inactive and
one in 25 a service account (``_svc``, ``007``); ``varied`` has realistic name
frequencies (``demo.directories.varied``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from typing import Any

from demo import directories
from demo.fake_jira import FakeJira
from worker.checkpoints import SearchPosition
from worker.directory import Filters, scan
from worker.jira import JiraClient

PAGE_SIZE = 1000  # the worker's default ASSETSYNC_JIRA_PAGE_SIZE


def measure(users: int, directory: str, cap: int = 1000) -> dict[str, Any]:
    with FakeJira(flavor="datacenter", has_user_list=False, search_cap=cap) as fake:
        if directory == "sample":
            fake.add_sample_users(users, inactive_every=10, native_every=20)
        else:
            fake.add_users(directories.varied(users))
        everyone = {u["key"] for u in fake.users()}
        jira = JiraClient(base_url=fake.url, username="admin", token="secret", flavor="datacenter")
        try:
            started = time.monotonic()
            seen: Counter[str] = Counter()
            last: SearchPosition | None = None
            for page in scan(jira, Filters(), page_size=PAGE_SIZE):
                seen.update(u.jira_id for u in page.users)
                if isinstance(page.checkpoint, SearchPosition):
                    last = page.checkpoint
            elapsed = time.monotonic() - started
        finally:
            jira.close()
        twice = sum(1 for n in seen.values() if n > 1)
        searches = fake.request_count("/rest/api/2/user/search")
        lookups = fake.request_count("/rest/api/2/user?")
        total = len(fake.request_log)
        return {
            "directory": directory,
            "cap": cap,
            "users": len(everyone),
            "requests": total,
            "searches": searches,
            "lookups": lookups,
            "requests_per_user": round(total / len(everyone), 4),
            "alphabet": len(last.alphabet) if last else None,
            "capped_parts": len(last.splits) if last else None,
            "seconds": round(elapsed, 1),
            # The check: every user of the directory exactly once.
            "missed": len(everyone - set(seen)),
            "unknown": len(set(seen) - everyone),
            "twice": twice,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[5000, 100000])
    parser.add_argument(
        "--directory", nargs="+", choices=["sample", "varied"], default=["sample", "varied"]
    )
    parser.add_argument(
        "--cap",
        type=int,
        nargs="+",
        default=[1000],
        help="the search caps to try: 1000 (Jira before 10), 100 (Data Center 10.0-10.2), any",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if not args.json:
        print(
            "| directory | cap | users | Jira requests | per user | searches | look-ups |"
            " alphabet | capped parts | seconds | every user once |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for directory, cap, users in itertools.product(args.directory, args.cap, args.users):
        result = measure(users, directory, cap)
        wrong = {k: result[k] for k in ("missed", "unknown", "twice") if result[k]}
        failed = failed or bool(wrong)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(
                f"| {directory} | {cap:,} | {result['users']:,} | {result['requests']:,}"
                f" | {result['requests_per_user']} | {result['searches']:,}"
                f" | {result['lookups']:,} | {result['alphabet']}"
                f" | {result['capped_parts']} | {result['seconds']}"
                f" | {', '.join(f'{n:,} {k}' for k, n in wrong.items()) or 'yes'} |",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

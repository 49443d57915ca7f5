"""Benchmarks of assetsync against the real broker and database on this machine.

``python -m bench.bulk_sync`` syncs N users from the fake Jira with real worker
processes and compares the rate with the machine's raw ceiling (``bench.raw_ceiling``):
consume, batched upsert, ack, with no Jira and no mapping. See each module's docstring
for what exactly is timed.
"""

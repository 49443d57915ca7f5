"""``python -m producers.bulk_sync``: request a bulk run, follow it, show runs.

``__main__`` is the command; ``progress`` follows a run and shows its summary.
"""

"""The Data Center security-log source behind ``python -m producers.security_log``.

Flow, one module each: ``follow`` (the file, across rotation and truncation, and the
saved position) -> ``parse`` (a line -> a login or not, pure) -> ``fold`` (one event
per user per quiet period, pure) -> publish with confirms -> save the position.
"""

"""``python -m producers.security_log``: logins from Jira Data Center's security log.

Flow, one module each: ``follow`` (the file, across rotation and truncation, and the
saved position) -> ``parse`` (a line -> a login or not, pure) -> ``fold`` (one event
per user per quiet period, pure) -> ``source`` (publish with confirms, then save the
position); ``status`` what it says about itself, served by ``endpoint`` (read-only
``/healthz`` and ``/metrics``); ``__main__`` is the command.
"""

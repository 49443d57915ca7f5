"""``python -m producers.webhooks``: the Jira webhook receiver and its registration.

Flow, one module each: ``payload`` (signature check and Jira's JSON -> ``user-changed``,
pure) -> ``app`` (HTTP: size limit, deduplication, answers) -> ``publishing`` (the
threads that own the pika connections); ``registration`` manages the webhook in Jira;
``__main__`` is the command (also reachable as ``python -m producers.jira_webhooks``).
"""

"""The webhook receiver behind ``python -m producers.jira_webhooks``.

Flow, one module each: ``payload`` (signature check and Jira's JSON -> ``user-changed``,
pure) -> ``app`` (HTTP: size limit, deduplication, answers) -> ``publishing`` (the one
thread that owns the pika connection) ; ``registration`` manages the webhook in Jira.
"""

"""Jira, the one client every component uses: ``client`` (the HTTP requests, and every
REST path of the project) and ``answers`` (what Jira sent, classified and checked; pure).
"""

from worker.jira.answers import Flavor, Webhook, retry_after
from worker.jira.client import JiraClient, Patience, RefKind, UserRef

__all__ = ["Flavor", "JiraClient", "Patience", "RefKind", "UserRef", "Webhook", "retry_after"]

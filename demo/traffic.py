"""``python -m demo.traffic``: what the Jira side would send, for the demo.

Every user in the (demo) Jira logs in once: one ``user-logged-in`` event each.
"""

from __future__ import annotations

import sys

from producers.publisher import ProducerSettings, Publisher, publish_user_logged_in
from worker.jira import JiraClient
from worker.settings import Settings


def demo_usernames(settings: Settings) -> list[str]:
    """The usernames of the demo directory, read page by page from Jira's user list."""
    assert settings.jira_url
    jira = JiraClient(
        base_url=settings.jira_url,
        username=settings.jira_username,
        token=settings.jira_token.get_secret_value() if settings.jira_token else None,
    )
    names: list[str] = []
    params: dict[str, str | int] = {"maxResults": 1000}
    try:
        while True:
            page = jira.get("/rest/api/2/user/list", params)
            names += [u["name"] for u in page["values"]]
            if page.get("isLast", True):
                return names
            params["cursor"] = page["nextCursor"]
    finally:
        jira.close()


def main() -> int:
    names = demo_usernames(Settings())
    producer = ProducerSettings()
    with Publisher(url=producer.amqp_url.get_secret_value(), topology=producer.topology) as pub:
        for name in names:
            publish_user_logged_in(pub, username=name)
    print(f"published {len(names)} user-logged-in events")
    return 0


if __name__ == "__main__":
    sys.exit(main())

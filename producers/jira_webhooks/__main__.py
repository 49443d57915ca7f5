"""``python -m producers.jira_webhooks``: ``python -m producers.webhooks`` by its 0.2 name."""

import sys

from producers.webhooks.__main__ import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m producers.jira_webhooks"))

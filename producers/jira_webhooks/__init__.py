"""The name 0.2 documented for the webhook receiver: ``python -m producers.jira_webhooks``
runs ``python -m producers.webhooks`` (``assetsync webhooks``)."""

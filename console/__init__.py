"""The Synchronize users web console for Jira administrators (``python -m console``)."""

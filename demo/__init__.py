"""Demo helpers: a fake Jira (``python -m demo``) for the quick start and integration tests."""

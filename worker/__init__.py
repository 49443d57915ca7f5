"""The assetsync worker: consumes sync requests and keeps user assets in step with Jira."""

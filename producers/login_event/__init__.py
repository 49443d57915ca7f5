"""``python -m producers.login_event``: publish one ``user-logged-in``, as Jira would."""

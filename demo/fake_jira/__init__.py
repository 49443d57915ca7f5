"""A fake Jira that is a real HTTP server, speaking Jira's documented user JSON (see
``server``): ``directory`` (users, groups and Jira's search rules), ``render`` (their
JSON), ``server`` (the endpoints, faults and the Python API tests steer it with),
``samples`` (sample people), ``__main__`` (``python -m demo.fake_jira``)."""

from demo.fake_jira.server import FakeJira

__all__ = ["FakeJira"]

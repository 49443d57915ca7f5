"""``python -m demo``: run the fake Jira, same options as ``python -m demo.fake_jira``."""

from demo.fake_jira.__main__ import main

raise SystemExit(main())

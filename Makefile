# One set of commands for people and CI. `make check` = lint + types + docs + tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: all check lint types docs settings-reference test run services schemas clean

all: check

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

check: lint types docs test

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

types: $(STAMP)
	$(PY) -m mypy assetsync worker producers schemas demo bench console

# The manual: the generated settings reference must be what the model says, and the site
# must build with no broken link or anchor and no page left out of the nav.
docs: $(STAMP)
	$(PY) -m worker.settings_reference docs/settings.md --check
	$(PY) -m mkdocs build --strict --quiet

settings-reference: $(STAMP)
	$(PY) -m worker.settings_reference docs/settings.md

test: $(STAMP) services
	scripts/ensure-chromium
	$(PY) -m pytest -n 2

# The main job: workers syncing users from the demo Jira (or ASSETSYNC_JIRA_URL).
run: $(STAMP)
	@if docker info >/dev/null 2>&1; then \
		scripts/compose-env && docker compose --profile demo up --build; \
	else \
		scripts/ensure-services && $(PY) -m demo.run; \
	fi

# Local RabbitMQ/PostgreSQL when no Docker engine runs the tests' containers.
services:
	@docker info >/dev/null 2>&1 || scripts/ensure-services

schemas: $(STAMP)
	$(PY) -m schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info site

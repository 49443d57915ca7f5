"""The sync settings in force, and following them while the replica runs.

The seven settings an administrator changes on the console (``SYNC_SETTINGS``) come
from three places, the first that has one wins:

1. an ``ASSETSYNC_*`` environment variable (or a line of the env file): operators who
   pin a setting in a ConfigMap keep it pinned, and the console shows it read-only;
2. the newest version saved in the asset store (``sync_settings``, by the console);
3. the default.

Every other setting is read from the environment only, once, at start.

A replica looks at the newest stored version number before every login and every
run's request, before the first batch of a run it has not seen yet, and otherwise
whenever what it knows is older than ``CHECK_EVERY`` seconds (a thread of its own does
so while the replica is idle). That is a primary-key look-up; the settings themselves
are read only when the number moved. So a login after a change obeys it, so does every
batch of a run requested after it, on every replica, and each replica logs ``sync
settings version N applied`` within ``CHECK_EVERY`` seconds. A
stored version that does not fit the asset store (a field deleted since it was saved)
is not applied: the replica keeps the last good one and says so once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import psycopg
from pydantic import ValidationError

from worker.errors import ConfigError, TransientError
from worker.mapping import MappingRules
from worker.settings import JIRA_FIELDS, MissingLimit, Settings
from worker.store import Scheme, Store, load_scheme
from worker.store.sync_settings import StoredSettings, load_settings, settings_version

log = logging.getLogger(__name__)

SYNC_SETTINGS = (
    "sync_on_login",
    "asset_type",
    "folder",
    "alphabetical_subfolders",
    "field_map",
    "missing_users",
    "missing_limit",
)
# Seconds between looks at the newest stored version: half the 10 s within which
# every replica must follow a change.
CHECK_EVERY = 5.0


def variable(name: str) -> str:
    """The environment variable that sets ``name``."""
    return f"ASSETSYNC_{name.upper()}"


def from_environment(env: Settings) -> frozenset[str]:
    """The sync settings an environment variable (or the env file) gives."""
    return frozenset(env.model_fields_set & set(SYNC_SETTINGS))


def check_stored(values: Mapping[str, Any]) -> Settings:
    """The stored sync settings checked by the settings model's own rules (defaults for
    the rest; the environment is not read). Names it does not know are ignored: a newer
    version may have stored more.

    :raises ValueError: naming the first setting that is not valid.
    """
    known = {name: values[name] for name in SYNC_SETTINGS if name in values}
    try:
        return Settings.model_validate(known)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise ValueError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None


def effective(env: Settings, stored: Mapping[str, Any]) -> Settings:
    """``env`` with the stored sync settings applied where the environment is silent.

    :raises ValueError: a stored setting is not valid.
    """
    checked = check_stored(stored)
    pinned = from_environment(env)
    update = {n: getattr(checked, n) for n in SYNC_SETTINGS if n in stored and n not in pinned}
    return env.model_copy(update=update)


@dataclass(frozen=True)
class SyncConfig:
    """The sync settings one piece of work follows: a stored version applied over the
    environment, and the asset type they name, checked against the asset store."""

    version: int  # the stored version applied (0: none stored)
    settings: Settings
    scheme: Scheme

    @cached_property
    def rules(self) -> MappingRules:
        return MappingRules(
            field_map=self.settings.field_map,
            user_field=self.scheme.user_field.name,
            folder=self.settings.folder_path,
            alphabetical=self.settings.alphabetical_subfolders,
        )

    @property
    def sync_on_login(self) -> bool:
        return self.settings.sync_on_login

    @property
    def mark_missing(self) -> bool:
        return self.settings.missing_users == "mark"

    @property
    def missing_limit(self) -> MissingLimit:
        return self.settings.missing_limit_rule

    @property
    def needs_groups(self) -> bool:
        """Listing pages carry no groups: a mapped ``groups`` costs a Jira request a user."""
        return "groups" in self.settings.field_map


def build(conn: psycopg.Connection[Any], env: Settings, stored: StoredSettings) -> SyncConfig:
    """The config of ``stored`` over ``env``, checked against the asset store.

    :raises ConfigError: naming the setting that does not fit, and where it comes from.
    """
    try:
        settings = effective(env, stored.values)
    except ValueError as exc:
        raise ConfigError(f"stored sync setting {exc} (version {stored.version})") from None
    try:
        scheme = load_scheme(
            conn,
            asset_type=settings.asset_type,
            user_field=settings.user_field if "user_field" in env.model_fields_set else None,
            field_map=settings.field_map,
            kinds=JIRA_FIELDS,
        )
    except ConfigError as exc:
        if stored.version:
            raise ConfigError(
                f"{exc} (with stored sync settings version {stored.version})"
            ) from None
        raise
    return SyncConfig(version=stored.version, settings=settings, scheme=scheme)


class LiveSync:
    """The replica's sync settings, followed while it runs (see the module docstring).

    Shared by the replica's threads: each asks for ``current()`` when it starts a piece
    of work and uses that one config for all of it.

    :param store: the replica's asset store.
    :param env: the settings read from the environment at start.
    :param check_every: seconds between looks at the newest stored version.
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        store: Store,
        env: Settings,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._env = env
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._config: SyncConfig | None = None
        self._checked = 0.0
        self._refused = 0  # a stored version found not to fit, not to be tried again

    def start(self, conn: psycopg.Connection[Any]) -> SyncConfig:
        """Read and check the settings at start.

        :raises ConfigError: they do not fit the asset store: the replica cannot start.
        """
        config = build(conn, self._env, load_settings(conn))
        self._install(config, first=True)
        return config

    def current(self, *, fresh: bool = False) -> SyncConfig:
        """The config to use now; with ``fresh``, after looking at the newest version
        whatever the time since the last look (a login, a run seen the first time)."""
        config = self._config
        assert config is not None, "start() first"
        if not fresh and self._clock() - self._checked < self._check_every:
            return config
        with self._lock:
            if fresh or self._clock() - self._checked >= self._check_every:
                self._check()
            assert self._config is not None
            return self._config

    def follow(self, stop: threading.Event) -> None:
        """Look at the stored version every ``check_every`` seconds until ``stop``: an idle
        replica follows (and logs) a change too, not only the next piece of work."""
        while not stop.wait(self._check_every / 5):
            try:
                self.current()
            except Exception:  # never let the follower die silently; the next try may work
                log.exception("checking the stored sync settings failed")

    def _check(self) -> None:
        assert self._config is not None
        self._checked = self._clock()
        try:
            with self._store.connection() as conn:
                newest = settings_version(conn)
                if newest in (self._config.version, self._refused):
                    return
                config = build(conn, self._env, load_settings(conn))
        except TransientError as exc:
            # The work at hand meets the outage itself; the settings are looked at again
            # at the next check.
            log.warning(
                "could not read the stored sync settings (%s); keeping version %d",
                exc,
                self._config.version,
            )
            return
        except ConfigError as exc:
            self._refused = newest
            log.error(
                "stored sync settings version %d not applied, version %d stays in force: %s",
                newest,
                self._config.version,
                exc,
            )
            return
        self._install(config, first=False)

    def _install(self, config: SyncConfig, *, first: bool) -> None:
        self._config = config
        self._checked = self._clock()
        pinned = sorted(from_environment(self._env))
        log.info(
            "sync settings %s: %s%s",
            "in force" if first else f"version {config.version} applied",
            f"stored version {config.version}" if config.version else "none stored",
            f"; set by the environment: {', '.join(variable(n) for n in pinned)}" if pinned else "",
        )

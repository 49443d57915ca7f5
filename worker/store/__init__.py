"""The asset store in PostgreSQL: every SQL statement of the project is in this package.

* ``pool``: the replica's connection pool, transactions, error translation, deadlines;
* ``scheme``: the asset type being synced, read and checked against the settings;
* ``folders``: the folder tree, paths to ids;
* ``upsert``: the idempotent write of planned user assets;
* ``runs``: bulk run bookkeeping (the run, its per-user rows, its counters);
* ``views``: what people read (``sync_run_summary``, ``user_assets``) and the
  scheduler's check-and-record of a run;
* ``locks``: every advisory lock and its key;
* ``keys``: the workers' signing key;
* ``sync_settings``: the stored sync settings and their audit log;
* ``clock``, ``sqlstates``: the database's clock, PostgreSQL's error classes;
* ``migrate``: the schema (``migrations/``), applied with yoyo under a lock.
"""

from worker.store.folders import Folders
from worker.store.pool import Store
from worker.store.scheme import FieldDef, Scheme, load_scheme
from worker.store.upsert import Change, Outcome, apply_plans, assets_of, mark_missing

__all__ = [
    "Change",
    "FieldDef",
    "Folders",
    "Outcome",
    "Scheme",
    "Store",
    "apply_plans",
    "assets_of",
    "load_scheme",
    "mark_missing",
]

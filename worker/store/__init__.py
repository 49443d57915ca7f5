"""The asset store in PostgreSQL, in four parts:

* ``pool``: the replica's connection pool, transactions, error translation, deadlines;
* ``scheme``: the asset type being synced, read and checked against the settings;
* ``folders``: the folder tree, paths to ids;
* ``upsert``: the idempotent write of planned user assets.
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

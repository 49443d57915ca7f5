"""The folder tree: a path of names to a folder id, created on first use."""

from __future__ import annotations

from worker.store.pool import Store

NO_FOLDER = -1  # dry run: the folder does not exist yet


class Folders:
    """Folder ids by path, cached for the replica's life (folders are never removed).

    :param store: the replica's pool; folders are created in transactions of their own,
        so that a caller's later rollback cannot leave a cached id pointing nowhere.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ids: dict[tuple[str, ...], int] = {}

    def id(self, path: tuple[str, ...], *, create: bool = True) -> int:
        """The id of ``path``, creating missing folders unless ``create`` is false (then
        a folder that does not exist yet is ``NO_FOLDER``)."""
        cached = self._ids.get(path)
        if cached is not None:
            return cached
        parent: int | None = None
        with self._store.transaction() as conn:
            for name in path:
                if create:
                    conn.execute(
                        "INSERT INTO folders (parent_id, name) VALUES (%s, %s)"
                        " ON CONFLICT (parent_id, name) DO NOTHING",
                        [parent, name],
                    )
                found = conn.execute(
                    "SELECT id FROM folders WHERE parent_id IS NOT DISTINCT FROM %s AND name = %s",
                    [parent, name],
                ).fetchone()
                if found is None:
                    return NO_FOLDER
                parent = found[0]
        assert parent is not None
        self._ids[path] = parent
        return parent

"""A dry run's preview (``sync_run_users.preview``): per user, who they are and what
their asset would become, written by the dry run's batches and read by the console."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import psycopg

from schemas.messages import JiraUser
from worker.mapping import username
from worker.store.upsert import Change

KINDS = ("created", "updated", "deactivated", "unchanged", "failed", "missing")


def record_preview(
    conn: psycopg.Connection[Any], run_id: UUID, changes: Sequence[tuple[Change, JiraUser]]
) -> None:
    """Each user's name and the changes their asset would get (field: [now, then])."""
    if not changes:
        return
    conn.execute(
        "UPDATE sync_run_users u SET preview = p.preview::jsonb"
        " FROM unnest(%b::text[], %b::text[]) AS p (jira_id, preview)"
        " WHERE u.run_id = %s AND u.jira_id = p.jira_id",
        [
            [c.jira_id for c, _ in changes],
            [
                json.dumps(
                    {
                        "name": username(user),
                        "display_name": user.display_name,
                        "fields": {k: list(v) for k, v in change.changed.items()},
                    },
                    default=str,
                )
                for change, user in changes
            ],
            run_id,
        ],
    )


def preview_rows(
    conn: psycopg.Connection[Any],
    run_id: UUID,
    *,
    kind: str | None,
    text: str | None,
    after: str | None,
    limit: int | None,
) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """(what, Jira identity, username, display name, changes) of the dry run's users by
    identity, those of ``kind`` (see ``KINDS``) and whose name holds ``text``, after
    ``after``; ``missing`` lists the assets the run found gone."""
    if kind == "missing":
        query = (
            "SELECT 'missing', jira_id, '', '', '{}'::jsonb FROM sync_run_missing"
            " WHERE run_id = %(run)s AND (%(after)s::text IS NULL OR jira_id > %(after)s)"
            "   AND (%(text)s::text IS NULL OR strpos(lower(jira_id), lower(%(text)s)) > 0)"
        )
    else:
        query = (
            "SELECT CASE WHEN deactivated THEN 'deactivated' ELSE outcome END, jira_id,"
            "       COALESCE(preview->>'name', ''), COALESCE(preview->>'display_name', ''),"
            "       COALESCE(preview->'fields', '{}'::jsonb)"
            " FROM sync_run_users WHERE run_id = %(run)s AND outcome IS NOT NULL"
            "   AND (%(after)s::text IS NULL OR jira_id > %(after)s)"
            "   AND (%(kind)s::text IS NULL"
            "        OR CASE WHEN deactivated THEN 'deactivated' ELSE outcome END = %(kind)s)"
            "   AND (%(text)s::text IS NULL"
            "        OR strpos(lower(COALESCE(preview->>'name', '') || ' '"
            "                  || COALESCE(preview->>'display_name', '') || ' ' || jira_id),"
            "                  lower(%(text)s)) > 0)"
        )
    query += " ORDER BY jira_id" + (" LIMIT %(limit)s" if limit is not None else "")
    params = {"run": run_id, "kind": kind, "text": text, "after": after, "limit": limit}
    with conn.cursor(name="preview") as cur:
        cur.execute(query, params)
        for what, jira_id, name, display, fields in cur:
            yield what, jira_id, name, display, fields or {}

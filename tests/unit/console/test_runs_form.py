"""``console.runs_form``: what a submitted run request becomes, and its refusals."""

from __future__ import annotations

import pytest

from console import runs_form


def test_groups_are_comma_separated_and_each_counted_once():
    assert runs_form.group_names(" a , b,a ") == ["a", "b"]
    assert runs_form.group_names("") == []
    with pytest.raises(runs_form.Refused, match="empty"):
        runs_form.group_names("a,,b")
    message = runs_form.request(
        runs_form.StartForm(prefix=" jo ", groups="devs", dry_run=True), requested_by="ann"
    )
    assert (message.username_prefix, message.groups, message.dry_run) == ("jo", ["devs"], True)
    with pytest.raises(runs_form.Refused, match="Username prefix"):
        runs_form.request(runs_form.StartForm(prefix="x" * 300), requested_by="ann")

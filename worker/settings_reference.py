"""``python -m worker.settings_reference [PAGE [--check]]``: the settings reference
(``docs/settings.md``) written from the settings model, ``worker.settings.Settings``;
without a page, printed.

The model is the one place a setting is declared, so the page is generated from it: a
field's name, type, constraints, default, the commands that read it and its ``doc``.
``make settings-reference`` rewrites the page; ``--check`` (run by ``make docs``, and
by a test) fails when the committed page is not what the model says.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from worker.cli import EXIT_OK, EXIT_USAGE, fail, say
from worker.settings import COMMANDS, Settings

PROG = "python -m worker.settings_reference"
PREFIX = Settings.model_config.get("env_prefix", "")

# Where each group's settings are explained at length (pages of docs/).
GROUP_PAGES = {
    "RabbitMQ": ("Architecture", "architecture.md"),
    "PostgreSQL": ("Database failover", "faults.md#database-failover"),
    "Jira": ("Security", "security.md"),
    "Console": ("The console", "console.md"),
    "Sync": ("Stored sync settings", "configuration.md#stored-sync-settings"),
    "Operations": ("Probes", "probes.md"),
    "Webhook receiver": ("Webhook receiver", "webhooks.md"),
    "Security-log source": ("Security-log source", "security-log.md#its-status-endpoint"),
}

HEADER = """\
# Settings reference

<!-- Generated from worker/settings.py by `python -m worker.settings_reference`
     (`make settings-reference`): edit the model, not this page. -->

Every setting of every command, from the one settings model (`worker.settings.Settings`)
that each process builds at start. Each is an environment variable (or a line of the
file given with `--env-file`); how they are read, checked and stored is in
[Configuration](configuration.md). *Read by* names the `assetsync` commands that read a
setting (the `python -m` forms are the same programs; `worker` includes `worker check`,
`healthcheck` and `rotate-key`, `webhooks` its `register`, `unregister` and `status`).
"""


def render() -> str:
    """The whole page, as the model describes it today."""
    groups: dict[str, list[tuple[str, FieldInfo]]] = {}
    for name, field in Settings.model_fields.items():
        groups.setdefault(_extra(field)["group"], []).append((name, field))
    parts = [HEADER]
    for group, fields in groups.items():
        parts.append(f"\n## {group}\n")
        page = GROUP_PAGES.get(group)
        if page is not None:
            parts.append(f"\nMore in [{page[0]}]({page[1]}).\n")
        parts.append("\n| setting | type | default | read by | meaning |\n|---|---|---|---|---|\n")
        parts.extend(_row(name, field) for name, field in fields)
    return "".join(parts)


def problems() -> list[str]:
    """What the model lacks for the reference: every field has a doc and its readers."""
    found = []
    for name, field in Settings.model_fields.items():
        extra = _extra(field)
        if not field.description:
            found.append(f"{name}: no doc")
        readers = extra.get("read_by") or []
        if not readers:
            found.append(f"{name}: read_by names no command")
        unknown = sorted(set(readers) - set(COMMANDS))
        if unknown:
            found.append(f"{name}: read_by names no such command {', '.join(unknown)}")
        if "group" not in extra:
            found.append(f"{name}: no group")
    return found


def _row(name: str, field: FieldInfo) -> str:
    extra = _extra(field)
    cells = [
        f"`{(PREFIX + name).upper()}`",
        _type(field),
        extra.get("shown_default") or _default(field),
        ", ".join(f"`{c}`" for c in extra["read_by"]),
        str(field.description),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def _type(field: FieldInfo) -> str:
    kind = _kind(field.annotation)
    bounds = list(_bounds(field.metadata))
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _kind(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + ", optional"
    if origin is typing.Annotated:  # FilePath: Annotated[Path, PathType("file")]
        kind = getattr(args[1], "path_type", None)
        return f"path of an existing {kind}" if kind else _kind(args[0])
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is tuple:
        return "JSON list of " + _kind(args[0]).replace("number", "numbers")
    if origin is dict:
        return "JSON object"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "text",
    SecretStr: "secret",
    Path: "path",
}


def _bounds(metadata: Iterable[Any]) -> Iterable[str]:
    for item in metadata:
        if isinstance(item, Ge):
            yield f"≥ {item.ge:,}"
        elif isinstance(item, Gt):
            yield f"> {item.gt:,}"
        elif isinstance(item, Le):
            yield f"≤ {item.le:,}"
        elif isinstance(item, Lt):
            yield f"< {item.lt:,}"
        elif isinstance(item, MinLen):
            yield "not empty" if item.min_length == 1 else f"at least {item.min_length} long"
        elif isinstance(item, MaxLen):
            yield f"at most {item.max_length} long"
        elif getattr(item, "pattern", None):
            yield f"matches `{item.pattern}`"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "— (required)"
    else:
        value = field.default
    if value is None:
        return "—"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        value = [_number(v) for v in value]
    if isinstance(value, dict | list):
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    return f"`{_number(value)}`"


def _number(value: Any) -> Any:
    # 60.0 seconds reads as 60, as the settings are written.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) > 1 or any(a.startswith("-") for a in paths) or (check and not paths):
        return fail(prog, "usage: [PAGE [--check]]", EXIT_USAGE)
    missing = problems()
    if missing:
        return fail(prog, "the settings model lacks: " + "; ".join(missing))
    text = render()
    if not paths:
        sys.stdout.write(text)
        return EXIT_OK
    page = Path(paths[0])
    if check:
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            return fail(
                prog,
                f"{page} is not what the settings model says: run `make settings-reference`",
            )
        return EXIT_OK
    page.write_text(text, encoding="utf-8")
    say(f"wrote {page}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

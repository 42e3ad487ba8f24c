"""Check that a run.json read from disk holds what a record holds: each field's JSON type.

A record may have been edited by hand, written by another version, or damaged. Readers (`ls`,
`status`, `logs`, `stop`) then show that one run as unreadable, naming the field, instead of
failing on every run (`ls` lists the others).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from expyrun.errors import UsageError

_TEXT = (str,)
_NUMBER = (int, float)
# Fields and the JSON types they may hold (null is always allowed but for `status`); unknown
# fields (a newer expyrun's) are not checked.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        ("run_dir", "name", "entry", "cwd", "host", "user", "expyrun_version", "started_at"),
        _TEXT,
    ),
    **dict.fromkeys(
        ("ended_at", "requirements", "rerun_of", "reproduces", "environment", "tracking"),
        _TEXT,
    ),
    **dict.fromkeys(("output_lost_since", "error"), _TEXT),
    **dict.fromkeys(("duration_s", "pid_started_at", "cpu_user_s", "cpu_system_s"), _NUMBER),
    **dict.fromkeys(("grace_s",), _NUMBER),
    **dict.fromkeys(
        ("pid", "child_pid", "exit_code", "peak_rss_bytes", "output_bytes", "schema"), (int,)
    ),
    **dict.fromkeys(("leftover_processes", "output_lost_bytes"), (int,)),
    **dict.fromkeys(("debug", "killed_after_grace", "merged_output", "result_repr"), (bool,)),
    **dict.fromkeys(("python", "code_copy", "git", "slurm", "stop_request"), (dict,)),
    **dict.fromkeys(("command", "attempts", "tags"), (list,)),
    "note": _TEXT,
}


def record_problem(data: object) -> str | None:
    """What makes `data` (parsed run.json) not a readable record, or None when it is one."""
    if not isinstance(data, dict):
        return f"not a JSON object but {_json_type(data)}"
    if not isinstance(data.get("status"), str):
        return "no status" if "status" not in data else "'status' is not a string"
    for field, types in FIELD_TYPES.items():
        value = data.get(field)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            expected = " or ".join(_JSON_NAMES[t] for t in types)
            return f"'{field}' is {_json_type(value)}, expected {expected}"
    tags = data.get("tags") or []
    if not all(isinstance(tag, str) for tag in tags):
        return "'tags' holds a value that is not a string"
    return None


_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_JSON_NAMES.update({dict: "an object", list: "an array"})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind in (bool, int, float, str, dict, list):
        if isinstance(value, kind):
            return _JSON_NAMES[kind]
    return type(value).__name__


# A tag name (run.json `tags`, `--tag`, `expyrun tag`): a letter, digit or underscore, then up
# to 63 letters, digits, `_`, `.` or `-`. No spaces, commas, `=` or quotes, so a tag reads the
# same in a shell, in `ls --keys` and in a `--where tag=NAME` filter; a leading `+`/`-` is how
# `expyrun tag` adds and removes.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
TAG_RULE = "a letter, digit or _, then up to 63 letters, digits, _, . or -"


def check_tag(name: str) -> str:
    """`name` if it is a valid tag name (TAG_PATTERN), else UsageError naming the rule."""
    if TAG_PATTERN.fullmatch(name) is None:
        raise UsageError(f"invalid tag name '{name}'", hint=f"a tag is {TAG_RULE}")
    return name


def check_tags(names: Sequence[str]) -> tuple[str, ...]:
    """Valid tag names, each once, in their first order (UsageError for an invalid one)."""
    return tuple(dict.fromkeys(check_tag(name) for name in names))

"""What a key names in a listed run: a record field, `result.*`, `record.*` or a config key.

The keys of `ls --keys/--where/--sort` and `clean --where`:
- record fields, by short names (`RECORD_FIELDS`): `run`, `status`, `name`, `started`,
  `ended`, `duration` (seconds), `exit`, `signal`, `peak_mem` (bytes), `host`, `user`,
  `entry`, `debug`, `tags` (`tag` in a filter: `tag=baseline`), `note`, `error`;
- `result.KEY`: the mapping the entry point returned (run.json `result`);
- `record.KEY`: any field of run.json as it is (`record.git.commit`, `record.slurm.job_id`);
- `config.KEY`, or any other dotted key: the resolved config the run used (config.yml),
  `training.lr`, `model.layers.0`. `config.` is needed only for a config key named like a
  record field (`config.name`).

The config is read only when a key needs it, from config.json (the JSON copy a launch writes
beside config.yml, ~40x faster to read) or, for runs made before it, config.yml with the C
YAML loader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from expyrun.run.snapshot import CONFIG_FILE, CONFIG_JSON_FILE
from expyrun.runs.query import MISSING

CONFIG_PREFIX = "config."
RECORD_PREFIX = "record."
RESULT_PREFIX = "result."
# The short names of record fields: the key users type -> the field of run.json.
RECORD_FIELDS = {
    "name": "name",
    "started": "started_at",
    "ended": "ended_at",
    "duration": "duration_s",
    "exit": "exit_code",
    "signal": "signal",
    "peak_mem": "peak_rss_bytes",
    "host": "host",
    "user": "user",
    "entry": "entry",
    "debug": "debug",
    "tags": "tags",
    "tag": "tags",
    "note": "note",
    "error": "error",
    "result": "result",
}
# Keys computed by ls, not read from a field: the run folder as shown, the effective status.
COMPUTED_FIELDS = ("run", "status")
# Config keys `--changed` leaves out: `__run__` says where and how the run ran (its `__code__`
# is the run folder itself, different for every run), not what was tried.
_RUN_SECTION = "__run__"


class ListedRun:
    """One run of a listing: its folder, record (run.json as JSON) and effective status; its
    config is read on first use."""

    __slots__ = ("_config", "data", "path", "shown", "status")

    def __init__(self, path: str, data: dict[str, Any], status: str, shown: str = "") -> None:
        self.path = path
        self.data = data
        self.status = status
        self.shown = shown or path
        self._config: dict[str, Any] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config the run used ({} when the run folder has none readable)."""
        if self._config is None:
            self._config = read_config(self.path)
        return self._config

    def value(self, key: str) -> object:
        """The run's value of `key` (see the module docstring), MISSING when it has none."""
        if key == "run":
            return self.shown
        if key == "status":
            return self.status
        field = RECORD_FIELDS.get(key)
        if field is not None:
            return self.data.get(field, MISSING)
        if key.startswith(RESULT_PREFIX):
            return dig(self.data.get("result"), key[len(RESULT_PREFIX) :])
        if key.startswith(RECORD_PREFIX):
            return dig(self.data, key[len(RECORD_PREFIX) :])
        if key.startswith(CONFIG_PREFIX):
            return dig(self.config, key[len(CONFIG_PREFIX) :])
        return dig(self.config, key)


def is_config_key(key: str) -> bool:
    """Whether `key` names a config key (not a record field, `result.*` or `record.*`)."""
    return not (
        key in RECORD_FIELDS
        or key in COMPUTED_FIELDS
        or key.startswith((RESULT_PREFIX, RECORD_PREFIX))
    )


def dig(root: object, dotted: str) -> object:
    """The value at a dotted path in JSON data (list items by index), MISSING when absent."""
    current = root
    for part in dotted.split("."):
        if isinstance(current, dict):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdecimal() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def leaves(root: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every value under `root` that is not a mapping; lists are values."""
    if isinstance(root, dict) and (root or not prefix):
        for key, value in root.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], root


def known_keys(runs: list[ListedRun], config: bool) -> list[str]:
    """Keys runs have, for a "did you mean": record names, results, and (`config`) the config
    keys of the first runs."""
    found = [*COMPUTED_FIELDS, *(key for key in RECORD_FIELDS if key != "result")]
    for run in runs[:50]:
        found += [RESULT_PREFIX + key for key, _ in leaves(run.data.get("result") or {})]
        if config:
            found += [key for key, _ in leaves(run.config)]
    return list(dict.fromkeys(key for key in found if key))


def first_with(runs: list[ListedRun], key: str) -> ListedRun | None:
    """The first run that has `key` (reading configs until one has it), None if none has."""
    return next((run for run in runs if run.value(key) is not MISSING), None)


def changed_keys(runs: list[ListedRun]) -> list[str]:
    """The config keys (outside `__run__`) whose values are not the same in every run, sorted;
    a key some runs lack counts as changed (DVC's `exp show --only-changed`)."""
    if len(runs) < 2:
        return []
    flat = [
        {key: value for key, value in leaves(run.config) if not _in_run_section(key)}
        for run in runs
    ]
    every = dict.fromkeys(key for keys in flat for key in keys)
    first = flat[0]
    return sorted(
        key
        for key in every
        if any(key not in keys or keys[key] != first.get(key, MISSING) for keys in flat)
    )


def _in_run_section(key: str) -> bool:
    return key == _RUN_SECTION or key.startswith(_RUN_SECTION + ".")


def read_config(run_dir: str) -> dict[str, Any]:
    """The resolved config of a run folder: config.json, else config.yml; {} if neither reads.

    config.yml holds strings that resolution would change with the `!P` prefix (config/
    dumping.py); the prefix is removed here, so values are what the entry point received.
    """
    try:
        with open(os.path.join(run_dir, CONFIG_JSON_FILE), "rb") as f:
            data = json.loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        pass
    return _read_yaml_config(os.path.join(run_dir, CONFIG_FILE))


def _read_yaml_config(path: str) -> dict[str, Any]:
    import yaml

    from expyrun.config.interpolation import NO_PARSE

    safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C one: ~8x faster
    try:
        with open(path, "rb") as f:
            loader = safe_loader(f.read())
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    unescaped = _map_strings(data, lambda s: s[len(NO_PARSE) :] if s.startswith(NO_PARSE) else s)
    return unescaped if isinstance(unescaped, dict) else {}


def _map_strings(value: object, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value

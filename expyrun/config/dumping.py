"""YAML text for config.yml and raw_config.yml: block style, keys sorted, no aliases.

Both write a key that holds a dot escaped (`bootstrap\\.servers`), so that it is read back as
one key. `dump_config` writes a resolved config so that resolving the file again gives the
same config: a string that resolution would change (holding `$` or `{`, or starting with `!P`)
is written with the `!P` prefix, which resolution removes. `dump_raw` writes the raw config's
values as they are: its variables and references are meant to be resolved again.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import yaml

from expyrun.config.composing import EXPONENT_FIRST, EXPONENT_FLOAT, FLOAT_TAG
from expyrun.config.interpolation import escape
from expyrun.config.keys import ConfigValue, escape_key

_BaseDumper: type[yaml.SafeDumper] | type[yaml.CSafeDumper]
try:
    _BaseDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseDumper = yaml.SafeDumper


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]  # a class chosen at import time
    """The safe dumper, writing shared values twice instead of as `&id001` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_path(dumper: yaml.SafeDumper, path: PurePath) -> yaml.Node:
    return dumper.represent_str(str(path))


def _represent_tuple(dumper: yaml.SafeDumper, items: tuple[Any, ...]) -> yaml.Node:
    return dumper.represent_list(list(items))


# The loader reads `1e-3` as a float: a string with that text is written quoted.
_Dumper.add_implicit_resolver(FLOAT_TAG, EXPONENT_FLOAT, EXPONENT_FIRST)
_Dumper.add_multi_representer(PurePath, _represent_path)
_Dumper.add_representer(tuple, _represent_tuple)

# Long strings stay on one line (the default folds them at 80 columns).
_WIDTH = 1 << 20


def _dump(mapping: object) -> str:
    return yaml.dump(
        mapping,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=True,
        allow_unicode=True,
        width=_WIDTH,
    )


def _escaped(value: ConfigValue, values: bool) -> ConfigValue:
    """`value` with keys holding a dot escaped (`a\\.b`: one key), and with `values`, strings
    that resolution would change too."""
    if isinstance(value, str):
        return escape(value) if values else value
    if isinstance(value, dict):
        return {escape_key(key): _escaped(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item, values) for item in value]
    return value


def dump_config(mapping: dict[str, Any]) -> str:
    """YAML text of a resolved config (config.yml); resolving it gives the same config."""
    return _dump(_escaped(mapping, values=True))


def dump_raw(mapping: dict[str, Any]) -> str:
    """YAML text of a raw config (raw_config.yml), its `$VAR` and `{ref}` left to resolve."""
    return _dump(_escaped(mapping, values=False))

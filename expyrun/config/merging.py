"""Deep merge of a config on top of its defaults, under its `__new_key_policy__`.

Mappings merge key by key, recursively; any other value (lists included) replaces the old one
wholesale. Inputs are never mutated: the result shares the unchanged subtrees with them. A key
present in the file but not in its defaults is a *new key*, handled by the policy at every
nesting level; keys starting with `__` are always accepted. A value whose type changes warns
(not a string holding `$VAR` or `{ref}`, whose type is only known once resolved).
"""

from __future__ import annotations

from expyrun.config.interpolation import needs_parsing
from expyrun.config.keys import ConfigMapping, ConfigValue, KeyPath, format_key, type_name
from expyrun.config.report import Origin, Origins, Report
from expyrun.config.run_section import SWEEP_KEY
from expyrun.errors import ConfigError

POLICY_KEY = "__new_key_policy__"
RAISE, WARN, PASS = "raise", "warn", "pass"
POLICIES = (RAISE, WARN, PASS)
DEFAULT_POLICY = WARN
RESERVED_PREFIX = "__"


def merge(
    base: ConfigMapping,
    top: ConfigMapping,
    *,
    policy: str,
    top_origins: Origins,
    report: Report,
) -> ConfigMapping:
    """`top` merged onto `base` (later wins); new keys of `top` handled by `policy`."""
    return _merge(base, top, (), policy, top_origins, report)


def merge_origins(base: Origins, top: Origins) -> Origins:
    """The origins of a merge: those of `top` win (it set the value last)."""
    merged = base.copy()
    merged.update(top)
    return merged


def _merge(
    base: ConfigMapping,
    top: ConfigMapping,
    prefix: KeyPath,
    policy: str,
    origins: Origins,
    report: Report,
) -> ConfigMapping:
    result = base.copy()
    for key, value in top.items():
        if key not in base:
            # A `__sweep__` entry is a dimension, not a key of the defaults: never "new".
            if policy != PASS and not key.startswith(RESERVED_PREFIX) and prefix != (SWEEP_KEY,):
                _new_key(base, (*prefix, key), policy, origins, report)
            result[key] = value
            continue
        old = base[key]
        if isinstance(old, dict) and isinstance(value, dict):
            result[key] = _merge(old, value, (*prefix, key), policy, origins, report)
            continue
        if not _same_type(old, value):
            path = (*prefix, key)
            report.warn(
                f"overridden with a different type: {type_name(old)} -> {type_name(value)}",
                origins.get(path),
                path,
            )
        result[key] = value
    return result


def _same_type(old: ConfigValue, new: ConfigValue) -> bool:
    # The original's rule: the new value must be an instance of the old value's type, so an
    # int replacing a float warns but a bool replacing an int does not (bool is an int). A
    # string holding `$VAR` or `{ref}` has no type until resolved: it never warns.
    if _unresolved(old) or _unresolved(new):
        return True
    return isinstance(new, type(old))


def _unresolved(value: ConfigValue) -> bool:
    return isinstance(value, str) and needs_parsing(value)


def _new_key(
    siblings: ConfigMapping, path: KeyPath, policy: str, origins: Origins, report: Report
) -> None:
    key = format_key(path)
    origin = origins.get(path) or Origin("<unknown>")
    hint = _closest_sibling(str(path[-1]), siblings, path[:-1])
    if policy == RAISE:
        raise ConfigError(
            f"new key, absent from the defaults ({POLICY_KEY} is '{RAISE}')",
            path=origin.path,
            line=origin.line,
            key=key,
            hint=hint,
        )
    report.warn("new key, absent from the defaults", origin, path, hint=hint)


def _closest_sibling(name: str, siblings: ConfigMapping, prefix: KeyPath) -> str | None:
    import difflib  # only when a hint is needed: it costs start-up time

    matches = difflib.get_close_matches(name, list(siblings), n=1, cutoff=0.75)
    if not matches:
        return None
    return f"did you mean '{format_key((*prefix, matches[0]))}'?"


def check_policy(value: ConfigValue, origin: Origin | None) -> str:
    """Validate a `__new_key_policy__` value; return it."""
    if isinstance(value, str) and value in POLICIES:
        return value
    raise ConfigError(
        f"unknown policy {value!r}",
        path=origin.path if origin else None,
        line=origin.line if origin else None,
        key=POLICY_KEY,
        hint="expected one of " + ", ".join(POLICIES),
    )

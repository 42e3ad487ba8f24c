"""Command-line overrides: `--a.b VALUE` and `--a.b=VALUE`, typed from the value they replace.

Overrides apply to the merged config before variables and references are resolved, so a value
may itself hold `$VAR` or `{ref}`, and values derived from the key follow it. The key must
exist (a key starting with `__` may be added to an existing mapping, like `__code__`); list
items are reached by index (`--layers.1.size 5`). A mapping is refused: its keys are
overridden one by one. How the text is typed from the replaced value: `override_values`.
"""

from collections.abc import Collection, Sequence
from typing import NamedTuple

from expyrun.config.keys import (
    MAX_DEPTH,
    ConfigMapping,
    ConfigValue,
    KeyPath,
    MissingKey,
    closest,
    format_key,
    get,
    nesting,
    normalize,
    set_value,
    split_key,
    type_name,
    walk,
)
from expyrun.config.loading import DEFAULT_KEY
from expyrun.config.merging import POLICY_KEY
from expyrun.config.override_values import NULLS, loose, option_text, typed
from expyrun.config.report import COMMAND_LINE, Origins
from expyrun.config.variables import one_line
from expyrun.errors import ConfigError

PREFIX = "--"
RESERVED_PREFIX = "__"


class Override(NamedTuple):
    """One `--key value` of the command line."""

    key: str  # as typed: `layers.1.size`
    parts: tuple[str, ...]
    text: str


def _error(message: str, *, key: str | None = None, hint: str | None = None) -> ConfigError:
    """An error about the command line (its "file" in messages)."""
    return ConfigError(message, path=COMMAND_LINE.path, key=key, hint=hint)


def parse_overrides(tokens: Sequence[str], flags: Collection[str] = ()) -> list[Override]:
    """Split argv tokens into overrides; refuse what is not `--KEY VALUE` or `--KEY=VALUE`.

    `flags` are the launch line's own flags (`--detach`): a mistyped one is suggested.
    """
    result: list[Override] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith(PREFIX) or token == PREFIX:
            raise _error(
                f"expected an override --KEY VALUE or --KEY=VALUE, got {token!r}",
                hint=_stray_hint(token, bool(result)),
            )
        key, equal, text = token[len(PREFIX) :].partition("=")
        index += 1
        if not equal:
            if index == len(tokens) or tokens[index].startswith(PREFIX):
                after = f" (next comes the option {tokens[index]!r})" if index < len(tokens) else ""
                raise _error(
                    f"the override --{key} has no value{after}",
                    key=key,
                    hint=flag_hint(key, flags)
                    or f"write --{key} VALUE, or --{key}=VALUE for a value starting with --",
                )
            text = tokens[index]
            index += 1
        parts = split_key(key) if key.isprintable() else None
        if parts is None:
            raise _error(f"malformed key in the override {token!r}", hint="write --a.b VALUE")
        result.append(Override(key, parts, text))
    return result


def apply_overrides(
    raw: ConfigMapping,
    overrides: Sequence[Override],
    origins: Origins,
    text_keys: frozenset[KeyPath] = frozenset(),
    option_maps: frozenset[KeyPath] = frozenset(),
    flags: Collection[str] = (),
) -> None:
    """Set each override in `raw` (in order: the last wins); `text_keys` are typed as strings.

    `option_maps` are mappings of options for another program (`__run__.__slurm__`): an
    override may add a key there (and the mapping itself), and its value is kept as written,
    but for null and booleans, since the program reads text (`1:00:00` stays a time). A key
    that does not exist suggests the closest key, or one of the launch line's `flags` when
    that is closer (`--stric 1`: did you mean --strict?).
    """
    for override in overrides:
        path, old, exists = _locate(raw, override, option_maps, flags)
        try:
            value: ConfigValue
            if path[:-1] in option_maps:
                value = option_text(override.text)
            elif path in text_keys:
                value = None if override.text in NULLS else override.text
            elif not exists:
                value = loose(override.text)
            else:
                value = typed(override.text, old)
            if nesting(value) > MAX_DEPTH - len(path):
                raise ValueError(f"the config would nest deeper than {MAX_DEPTH} levels")
        except ValueError as exc:
            raise _error(
                f"cannot override with {_shown_text(override.text)}: {exc}",
                key=override.key,
                hint=f"the current value is {_shown(old)}" if exists else None,
            ) from None
        set_value(raw, path, value)
        origins[path] = COMMAND_LINE
        for sub, _ in walk(value, path):
            origins[sub] = COMMAND_LINE


def flag_hint(key: str, flags: Collection[str], rival: str | None = None) -> str | None:
    """`did you mean --detach?` when `--key` looks like one of `flags` more than like `rival`.

    `rival` is the closest config key, if any: the flag is suggested when it is as close or
    closer. A key that is exactly a flag (`--detach=true`: a flag without a value, written
    with one) says so.
    """
    if not flags:
        return None
    if f"{PREFIX}{key}" in flags:
        return (
            f"--{key} is expyrun's flag and takes no value: write --{key}; --{key}=VALUE sets a "
            f"config key named {key}"
        )
    names = [flag[len(PREFIX) :] for flag in flags]
    import difflib  # only when a hint is needed: it costs start-up time

    matches = difflib.get_close_matches(key, names, n=1, cutoff=_FLAG_CUTOFF)
    # Swapped letters (`degub`) and a flag's start (`--print`) score lower, and are typos too.
    matches += [name for name in names if sorted(name) == sorted(key)]
    matches += [name for name in names if len(key) >= 4 and name.startswith(key)]
    if not matches:
        return None
    if rival is not None and _ratio(key, rival) > _ratio(key, matches[0]):
        return None
    return f"did you mean expyrun's flag --{matches[0]}?"


_FLAG_CUTOFF = 0.75  # `detatch`/`detach` 0.92, `stric`/`strict` 0.91; `lr`/`env` 0


def _ratio(first: str, second: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, first, second).ratio()


def _stray_hint(token: str, after_override: bool) -> str:
    """What a token that is not `--KEY` probably meant (Hydra's `a.b=1`, `-lr`, a space)."""
    if token.endswith((".yml", ".yaml")) and "=" not in token:
        return f"one config file per launch: name the others in its {DEFAULT_KEY}"
    key, equal, value = token.lstrip("+~").partition("=")
    if equal and key and split_key(key) and key.isprintable() and " " not in key:
        return one_line(f"did you mean --{key}={value}?")
    if token.startswith("-") and split_key(token.lstrip("-")):
        return f"did you mean --{token.lstrip('-')}?"
    if after_override:
        return "an override takes one value: quote a value holding spaces"
    if split_key(token) and token.replace(".", "").replace("_", "").isalnum():
        return f"did you mean --{token}?"
    return "write --KEY VALUE"


def _shown_text(text: str) -> str:
    """The override's text for a message: quoted, cut when long."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


def _shown(value: ConfigValue) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type_name(value)} {text}"


def _locate(
    raw: ConfigMapping,
    override: Override,
    option_maps: frozenset[KeyPath] = frozenset(),
    flags: Collection[str] = (),
) -> tuple[KeyPath, ConfigValue, bool]:
    """(path, current value, whether it exists) of the key an override names."""
    if override.parts[0] in (DEFAULT_KEY, POLICY_KEY):
        raise _error("is read while loading the files: it cannot be overridden", key=override.key)
    if tuple(override.parts[:-1]) in option_maps:
        return _locate_option(raw, override)
    try:
        path = normalize(raw, override.parts)
    except MissingKey as exc:
        parent_parts = override.parts[:-1]
        last = override.parts[-1]
        if exc.depth == len(parent_parts) and last.startswith(RESERVED_PREFIX):
            parent_path = normalize(raw, parent_parts)
            if isinstance(get(raw, parent_path), dict):
                return (*parent_path, last), None, False
        keys = closest(override.key, raw, leaves=True)
        hint = flag_hint(override.key, flags, keys[0] if keys else None)
        if hint is None and keys:
            hint = "did you mean " + " or ".join(f"'{key}'" for key in keys) + "?"
        raise _error("no such key to override", key=override.key, hint=hint) from None
    old = get(raw, path)
    if isinstance(old, dict):
        inner = [format_key((*path, key)) for key in list(old)[:3]]
        raise _error(
            "is a mapping: override its keys one by one",
            key=override.key,
            hint=f"for instance --{inner[0]}" if inner else "it is empty",
        )
    return path, old, True


def _locate_option(raw: ConfigMapping, override: Override) -> tuple[KeyPath, ConfigValue, bool]:
    """A key of an option mapping: the mapping is made if its parent mapping has none."""
    *parents, last = override.parts
    section: ConfigValue = raw
    for depth, part in enumerate(parents):
        if not isinstance(section, dict):
            break
        if section.get(part) is None and depth == len(parents) - 1:
            section[part] = {}
        section = section.get(part)
    if not isinstance(section, dict):
        raise _error(f"{format_key(tuple(parents))} is not a mapping of options", key=override.key)
    path = (*parents, last)
    return path, section.get(last), last in section

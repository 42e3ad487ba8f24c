"""The `__run__` section of a resolved config, validated into a `RunSpec`.

`__main__` (mandatory) names the entry point, `package.module:function`; `__name__`
(mandatory) names the run, a relative path that stays inside the output dir; `__output_dir__`
(mandatory) is where runs go; `__code__` (optional) is where the entry point's package is;
`__slurm__` (optional) holds Slurm options; `__code_exclude__` (optional) lists glob patterns
of files and folders left out of the code copy; `__no_path_warning__` (optional) lists keys
whose relative paths are not warned about (`paths`). Other keys are kept but unused.

The run folder, `OUTPUT_DIR/NAME/exp.N`, must be a folder the system can make and a line
`ls` can print, so that a launch fails here, before anything is created, rather than half-way:
- no control or other invisible character in the name or the output dir (a newline splits
  `ls` rows and `--detach`'s last line; a NUL ends a C string);
- no part of the name looks like a run folder (`exp.3`): a run inside another run's folder;
- every part at most NAME_MAX bytes (255, or what pathconf says for the output dir's file
  system), and the run folder's path short enough to hold a file name under PATH_MAX.
"""

import functools
import keyword
import os
import re
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from expyrun.config.file_system import file_system_limits
from expyrun.config.keys import (
    ConfigMapping,
    ConfigValue,
    KeyPath,
    Scalar,
    format_key,
    split_key,
    type_name,
)
from expyrun.config.report import Origin, Origins
from expyrun.errors import ConfigError

RUN_KEY = "__run__"
MAIN_KEY = "__main__"
NAME_KEY = "__name__"
OUTPUT_DIR_KEY = "__output_dir__"
CODE_KEY = "__code__"
SLURM_KEY = "__slurm__"
CODE_EXCLUDE_KEY = "__code_exclude__"
NO_PATH_WARNING_KEY = "__no_path_warning__"  # keys whose relative paths are meant as written
# A top-level mapping of sweep dimensions (KEY or `K1,K2` -> a list or a `range(...)` text):
# read by `sweep/`, inherited through `__default__`, never given to the entry point, and left
# out of each member's raw_config.yml (docs/sweeps.md).
SWEEP_KEY = "__sweep__"
MANDATORY = (MAIN_KEY, NAME_KEY, OUTPUT_DIR_KEY)
# A run folder's own name, as run/folder.py makes it (config/ may not import run/: a unit test
# checks the two agree). A name part like it would nest a run inside another run's folder.
RUN_FOLDER_PART = re.compile(r"exp\.[0-9]+")
# Room kept in the run folder's path: `/DEBUG` (a --debug run), `/exp.N` with N up to 10
# digits, and one file name inside (`/` and NAME_MAX bytes), under PATH_MAX.
_DEBUG_PART, _RUN_FOLDER_PART_MAX = len("/DEBUG"), len("/exp.") + 10
# Linux's values, when pathconf cannot tell (<linux/limits.h>).
# A YAML 1.1 base-60 number as written after a key (`time: 1:00:00` is read as 3600); compiled
# when first used (re caches it): only a number in __slurm__ needs it.
_SEXAGESIMAL = r":\s+([-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)\s*(?:#.*)?$"

# Overrides of these keys are kept as text (a name `5` stays "5", a path stays a path).
TEXT_KEYS = frozenset((RUN_KEY, key) for key in (MAIN_KEY, NAME_KEY, OUTPUT_DIR_KEY, CODE_KEY))
# Overrides may add keys to these mappings of another program's options (kept as text).
OPTION_MAPS = frozenset({(RUN_KEY, SLURM_KEY)})


class RunSpec(NamedTuple):
    """What to run and where to keep it, from `__run__`."""

    entry: str  # "package.module:function"
    module: str  # "package.module"
    function: str  # "function"
    name: str  # relative, normalized ("a/b"), never escapes output_dir
    output_dir: Path  # absolute
    code_dir: Path  # absolute
    slurm: dict[str, Scalar]  # the `__slurm__` mapping of `__run__`, {} when absent
    code_exclude: tuple[str, ...] = ()  # `__code_exclude__`: glob patterns, checked
    no_path_warning: tuple[tuple[str, ...], ...] = ()  # `__no_path_warning__`: keys, split


def read_run_section(config: ConfigMapping, origins: Origins, cwd: Path, top: Origin) -> RunSpec:
    """Validate the resolved `__run__` of `config`; relative paths are taken from `cwd`."""
    section = config.get(RUN_KEY)
    if not isinstance(section, dict):
        if RUN_KEY not in config:
            raise ConfigError(
                f"no {RUN_KEY} section",
                path=top.path,
                hint=f"add {RUN_KEY} with {', '.join(MANDATORY)}",
            )
        raise _error(f"expected a mapping, got {_a(type_name(section))}", (RUN_KEY,), origins, top)
    for key in MANDATORY:
        if section.get(key) is None:
            raise _missing(key, section, origins, top)
    entry, module, function = _entry(section[MAIN_KEY], origins, top)
    name = _name(section[NAME_KEY], origins, top)
    output_dir = _directory(section[OUTPUT_DIR_KEY], OUTPUT_DIR_KEY, cwd, origins, top)
    code = section.get(CODE_KEY)
    code_dir = cwd if code is None else _directory(code, CODE_KEY, cwd, origins, top)
    _check_lengths(output_dir, name, origins, top)
    slurm = _slurm(section.get(SLURM_KEY), origins, top, cwd)
    code_exclude = _code_exclude(section.get(CODE_EXCLUDE_KEY), origins, top)
    quiet = _key_list(section.get(NO_PATH_WARNING_KEY), origins, top)
    return RunSpec(entry, module, function, name, output_dir, code_dir, slurm, code_exclude, quiet)


def _error(message: str, path: KeyPath, origins: Origins, top: Origin) -> ConfigError:
    origin = origins.get(path) or origins.get(path[:1]) or top
    return ConfigError(message, path=origin.path, line=origin.line, key=format_key(path))


def _missing(key: str, section: ConfigMapping, origins: Origins, top: Origin) -> ConfigError:
    state = "is null" if key in section else "is missing"
    error = _error(f"{key} {state}: it is mandatory", (RUN_KEY, key), origins, top)
    import difflib  # only when a hint is needed: it costs start-up time

    close = difflib.get_close_matches(key, [k for k in section if k not in MANDATORY], n=1)
    if close:
        error.hint = f"did you mean to write {key} instead of {close[0]}?"
    return error


def _entry(value: ConfigValue, origins: Origins, top: Origin) -> tuple[str, str, str]:
    module, colon, function = value.partition(":") if isinstance(value, str) else ("", "", "")
    if colon and _dotted_identifier(module) and _dotted_identifier(function, dots=False):
        return f"{module}:{function}", module, function
    error = _error(
        f"expected package.module:function, got {value!r}", (RUN_KEY, MAIN_KEY), origins, top
    )
    error.hint = "for instance my_code.experiments.first_method:main"
    raise error


def _dotted_identifier(text: str, dots: bool = True) -> bool:
    parts = text.split(".") if dots else [text]
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def _as_text(value: ConfigValue, key: str, origins: Origins, top: Origin) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `__name__: 5`: a number names a run as well as text does
    raise _error(f"expected a string, got {_a(type_name(value))}", (RUN_KEY, key), origins, top)


def _name(value: ConfigValue, origins: Origins, top: Origin) -> str:
    """The run name as a normalized relative path that cannot leave the output dir."""
    text = _as_text(value, NAME_KEY, origins, top)
    path = PurePosixPath(text)
    problem = _invisible(text) or _name_problem(path, text)
    if problem:
        raise _error(f"{problem}, got {_shown(text)}", (RUN_KEY, NAME_KEY), origins, top)
    return str(path)


def _name_problem(path: PurePosixPath, text: str) -> str | None:
    if path.is_absolute() or text.startswith("~"):
        return "must be a relative path (the run folder is OUTPUT_DIR/NAME)"
    if ".." in path.parts:
        return "must not contain '..' (the run folder would leave the output dir)"
    if not path.parts:
        return "must not be empty"
    if any(RUN_FOLDER_PART.fullmatch(part) for part in path.parts):
        return "must not have a part named like a run folder (exp.N): runs would nest in runs"
    return None


def _invisible(text: str) -> str | None:
    """What is wrong when `text` holds a character a path printed on one line must not."""
    if text.isprintable():
        return None
    char = next(char for char in text if not char.isprintable())
    what = "a NUL byte" if char == "\0" else f"the control or invisible character U+{ord(char):04X}"
    return f"must not contain {what}"


def _shown(text: str) -> str:
    """`text` quoted, escapes visible, cut when long (a message stays one readable line)."""
    return repr(text) if len(text) <= 100 else repr(text[:80]) + f"... ({len(text)} characters)"


def _check_lengths(output_dir: Path, name: str, origins: Origins, top: Origin) -> None:
    """Refuse a run folder path the file system cannot hold (ENAMETOOLONG later)."""
    name_max, path_max = file_system_limits(output_dir)
    for key, path in ((OUTPUT_DIR_KEY, output_dir), (NAME_KEY, PurePosixPath(name))):
        for part in path.parts:
            size = len(_encoded(part, key, origins, top))
            if size > name_max:
                raise _error(
                    f"a part of the path is {size} bytes, longer than the {name_max} the file "
                    f"system allows, got {_shown(part)}",
                    (RUN_KEY, key),
                    origins,
                    top,
                )
    # PATH_MAX counts the terminating NUL.
    limit = path_max - 1 - (_DEBUG_PART + _RUN_FOLDER_PART_MAX + 1 + name_max)
    out_size = len(_encoded(str(output_dir), OUTPUT_DIR_KEY, origins, top))
    size = out_size + 1 + len(_encoded(name, NAME_KEY, origins, top))
    if size > limit:
        raise _error(
            f"OUTPUT_DIR/NAME is {size} bytes, longer than the {limit} that leave room under "
            f"PATH_MAX ({path_max}) for exp.N and the files of a run",
            (RUN_KEY, OUTPUT_DIR_KEY if out_size > limit else NAME_KEY),
            origins,
            top,
        )


def _encoded(text: str, key: str, origins: Origins, top: Origin) -> bytes:
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        raise _error(
            f"cannot be written as a file name, got {_shown(text)}", (RUN_KEY, key), origins, top
        ) from None


def _directory(value: ConfigValue, key: str, cwd: Path, origins: Origins, top: Origin) -> Path:
    text = _as_text(value, key, origins, top)
    if not text.strip():
        error = _error("must not be empty", (RUN_KEY, key), origins, top)
        error.hint = "is its environment variable set?"
        raise error
    problem = _invisible(text)
    if problem:
        raise _error(f"{problem}, got {_shown(text)}", (RUN_KEY, key), origins, top)
    return _absolute(text, cwd)


@functools.lru_cache(maxsize=64)
def _absolute(text: str, cwd: Path) -> Path:
    """`text` (`~` expanded) from `cwd`, normalized; once per text (each sweep member asks)."""
    return Path(os.path.normpath(cwd / os.path.expanduser(text)))


def _code_exclude(value: ConfigValue, origins: Origins, top: Origin) -> tuple[str, ...]:
    """The `__code_exclude__` patterns: a list of non-empty relative glob patterns.

    A pattern without `/` is matched against each file and folder name, one with `/` against
    the path from the code folder (`pkg/data/*`); run/code_exclusions.py applies them.
    """
    if value is None:
        return ()
    path = (RUN_KEY, CODE_EXCLUDE_KEY)
    if not isinstance(value, list):
        error = _error(
            f"expected a list of glob patterns, got {_a(type_name(value))}", path, origins, top
        )
        error.hint = f"for instance {CODE_EXCLUDE_KEY}: ['*.ckpt', 'pkg/data']"
        raise error
    patterns: list[str] = []
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str):
            problem = f"expected a glob pattern (a string), got {_a(type_name(pattern))}"
        elif not pattern.strip("/ ") or "\0" in pattern:
            problem = f"expected a glob pattern, got {pattern!r}"
        elif pattern.startswith(("/", "~")) or ".." in PurePosixPath(pattern).parts:
            problem = f"must be relative to the code folder, got {pattern!r}"
        else:
            patterns.append(pattern)
            continue
        raise _error(problem, (*path, index), origins, top)
    return tuple(patterns)


def _key_list(value: ConfigValue, origins: Origins, top: Origin) -> tuple[tuple[str, ...], ...]:
    """The `__no_path_warning__` keys (`[data, eval.file]`), each split into its parts."""
    if value is None:
        return ()
    path = (RUN_KEY, NO_PATH_WARNING_KEY)
    if not isinstance(value, list):
        problem = f"expected a list of keys, got {_a(type_name(value))}"
        raise _error(problem, path, origins, top)
    keys = []
    for index, item in enumerate(value):
        parts = split_key(item) if isinstance(item, str) else None
        if parts is None:
            raise _error(
                f"expected a key like data.train, got {item!r}", (*path, index), origins, top
            )
        keys.append(parts)
    return tuple(keys)


def _slurm(value: ConfigValue, origins: Origins, top: Origin, cwd: Path) -> dict[str, Scalar]:
    if value is None:
        return {}
    path = (RUN_KEY, SLURM_KEY)
    if not isinstance(value, dict):
        raise _error(
            f"expected a mapping of options, got {_a(type_name(value))}", path, origins, top
        )
    options: dict[str, Scalar] = {}
    for option, setting in value.items():
        if isinstance(setting, (dict, list)):
            raise _error(
                f"expected a single value, got {_a(type_name(setting))}",
                (*path, option),
                origins,
                top,
            )
        if isinstance(setting, int | float) and not isinstance(setting, bool):
            written = _sexagesimal_text(origins.get((*path, option)), cwd)
            if written is not None:
                error = _error(
                    f"YAML reads {written} as the base-60 number {setting}, not a time",
                    (*path, option),
                    origins,
                    top,
                )
                error.hint = f'quote it: {option}: "{written}"'
                raise error
        options[option] = setting
    return options


def _sexagesimal_text(origin: Origin | None, cwd: Path) -> str | None:
    """The `1:00:00` a number was read from, when its line in the config file shows one.

    sbatch never wants a base-60 number: `time: 1:00:00` unquoted would ask for 3600 minutes.
    Read only for numbers in `__slurm__`, so it costs nothing elsewhere.
    """
    if origin is None or origin.line is None:
        return None
    try:
        with open(cwd / origin.path, encoding="utf-8", errors="replace") as file:
            for number, text in enumerate(file, 1):
                if number == origin.line:
                    match = re.search(_SEXAGESIMAL, text.rstrip("\r\n"))
                    return match.group(1) if match else None
    except OSError:
        return None
    return None


def _a(noun: str) -> str:
    """`noun` with its article, for messages: a string, an integer."""
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"

"""Entry points behind decorators and imports, through the real CLI: what plain python can
call as `main(name, config)` runs; what certainly cannot is refused with one line naming the
file and line, before the run folder exists when the code shows it without running."""

from __future__ import annotations

import re

import pytest
from support import Project, run

DECORATORS = '''
import asyncio
import functools


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        print("calling", fn.__name__)
        return fn(*args, **kwargs)

    return wrapper


def bare(fn):
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


class Tracked:
    """A class-based decorator that passes a tracker, and shows the function's attributes
    (`__name__`, `__doc__`, `__code__`...) as its own, as proxies (wrapt) do."""

    def __init__(self, fn):
        self.fn = fn

    def __getattr__(self, attribute):
        return getattr(self.fn, attribute)

    def __call__(self, name, config):
        return self.fn(name, config, tracker="tracker")


def synced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def still_async(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        return await fn(*args, **kwargs)

    return wrapper
'''

ENTRIES = {
    "wraps": "@logged\ndef main(name, config):\n    print('ran', name)\n",
    "no-wraps": "@bare\ndef main(name, config):\n    print('ran', name)\n",
    "class-based": "@Tracked\ndef main(name, config, tracker):\n    print('ran', name, tracker)\n",
    "async-made-plain": "@synced\nasync def main(name, config):\n    print('ran', name)\n",
    "decorated-method": (
        "class Experiment:\n    @logged\n    def run(self, name, config):\n"
        "        print('ran', name)\n\n\nmain = Experiment().run\n"
    ),
}


def _entry(project: Project, body: str) -> list[str]:
    project.write("pkg/__init__.py", "")
    project.write("pkg/decorators.py", DECORATORS)
    project.write("pkg/main.py", "from pkg.decorators import *  # noqa\n\n\n" + body)
    return [str(project.config("pkg.main:main", name="exp"))]


@pytest.mark.parametrize("which", list(ENTRIES))
def test_a_decorated_entry_that_plain_python_can_call_runs(project: Project, which: str) -> None:
    """Before, the static check refused the decorated async function (the decorator makes it
    plain) and the worker refused the class-based decorator (it read the wrapped function's
    `__code__` through the proxy: three parameters)."""
    result = run(_entry(project, ENTRIES[which]), cwd=project.root)
    assert result.code == 0, result.describe()
    assert re.search(rb"^ran exp( tracker)?\n", result.log, re.MULTILINE), result.describe()


def test_an_entry_still_async_after_its_decorator_is_refused_by_the_worker(
    project: Project,
) -> None:
    """Calling it would only make a coroutine: nothing would run, and the run would say
    `succeeded`. Only the import shows it, so the run folder exists: the record says why."""
    body = "@still_async\nasync def main(name, config):\n    print('ran')\n"
    result = run(_entry(project, body), cwd=project.root)
    assert result.code == 2, result.describe()
    errors = [line for line in result.stderr.splitlines() if line.startswith("expyrun: error:")]
    assert len(errors) == 1, result.describe()
    assert re.search(
        r"decorators\.py:\d+: entry point 'pkg\.main:main' is an async function", errors[0]
    ), result.describe()
    assert "Traceback" not in result.stderr
    assert result.record["status"] == "failed"
    assert b"ran" not in result.log


@pytest.mark.parametrize(
    ("files", "pattern"),
    [
        pytest.param(
            {"pkg/main.py": "def main(name):\n    pass\n"},
            r"main\.py:1: entry point 'pkg\.main:main' must accept \(name, config\)$",
            id="one-parameter",
        ),
        pytest.param(
            {
                "pkg/main.py": "from pkg.train import run as main\n",
                "pkg/train.py": "import os\n\n\ndef run(config):\n    pass\n",
            },
            r"train\.py:4: entry point 'pkg\.main:main' must accept \(name, config\)$",
            id="imported-one-parameter",
        ),
        pytest.param(
            {
                "pkg/main.py": "from .steps import main\n",
                "pkg/steps/__init__.py": "from .train import main\n",
                "pkg/steps/train.py": "async def main(name, config):\n    pass\n",
            },
            r"train\.py:1: entry point 'pkg\.main:main' is an async function",
            id="re-exported-async",
        ),
        pytest.param(
            {"pkg/main.py": "from pkg.train import run as main\n", "pkg/train.py": "run = 5\n"},
            r"train\.py:1: entry point 'pkg\.main:main' is not a function: 'run' is the int 5$",
            id="imported-int",
        ),
    ],
)
def test_an_entry_that_cannot_take_name_and_config_is_refused_before_the_run_folder(
    project: Project, files: dict[str, str], pattern: str
) -> None:
    """Before, an entry imported from another module of the package was refused by the
    worker, after its run folder was made (record `failed`, exit 2)."""
    project.write("pkg/__init__.py", "")
    for path, text in files.items():
        project.write(path, text)
    result = run([project.config("pkg.main:main")], cwd=project.root)
    assert result.code == 2, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("expyrun: error: "), result.describe()
    assert re.search(pattern, lines[0]), result.describe()
    assert not project.output.exists(), "a run folder was made"


def test_an_entry_from_a_module_getattr_runs(project: Project) -> None:
    """Following an import refuses only what it finds: a name the module does not bind
    (served by its `__getattr__`) is left to the worker, which calls it."""
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", "from .train import main\n")
    project.write(
        "pkg/train.py",
        "def _impl(name, config):\n    print('ran')\n\n\ndef __getattr__(attribute):\n"
        "    return _impl\n",
    )
    result = run([project.config("pkg.main:main")], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"ran\n"


def test_an_imported_submodule_is_left_to_the_worker(project: Project) -> None:
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", "from pkg import train as main\n")
    project.write("pkg/train.py", "")
    result = run([project.config("pkg.main:main")], cwd=project.root)
    assert result.code == 2, result.describe()
    assert "entry point 'pkg.main:main' is not callable" in result.stderr
    assert result.record["status"] == "failed"

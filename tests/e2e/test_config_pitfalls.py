"""Issue 17 through the real CLI: what reaches the entry point, what is warned, once."""

from __future__ import annotations

import json
from pathlib import Path

from support import Project, run

# The entry writes the config it received, with each value's type, into the run folder.
DUMP = """
import json
def typed(v):
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return [type(v).__name__, v]
with open("received.json", "w") as f:
    json.dump(typed(config), f)
"""

CONFIG = r"""__run__:
  __main__: {entry}
  __output_dir__: {output}
  __name__: 'n-{{kafka.bootstrap\.servers}}'
lr: 1e-3
wd: 5E-4
kafka:
  bootstrap\.servers: 'host:9092'
  enable: false
  enable\.auto\.commit: true
data_dir: ${{EXPYRUN_TEST_UNSET_17:-/datasets/{{kafka.enable}}}}
tags: [a, b]
warmup: ${{EXPYRUN_TEST_UNSET_17:-1e-3}}
"""


def _received(run_dir: Path) -> dict:
    return json.loads((run_dir / "received.json").read_text())


def test_floats_defaults_and_dotted_keys_reach_the_entry_and_survive_a_rerun(
    project: Project,
) -> None:
    entry = project.entry(DUMP)
    project.write("config.yml", CONFIG.format(entry=entry, output=project.output))
    overrides = ["--lr", "2e-4", r"--kafka.bootstrap\.servers", "other:1", "--tags", ""]
    first = run(["config.yml", *overrides], cwd=project.root)
    assert first.code == 0, first.describe()
    assert "warning" not in first.stderr, first.describe()
    expected = {
        "lr": ["float", 0.0002],
        "wd": ["float", 0.0005],
        "kafka": {
            "bootstrap.servers": ["str", "other:1"],
            "enable": ["bool", False],
            "enable.auto.commit": ["bool", True],
        },
        "data_dir": ["str", "/datasets/False"],
        "tags": [],
        "warmup": ["float", 0.001],
    }
    assert _received(first.run_dir) == expected
    assert first.run_dir.parent.name == "n-other:1"
    again = run(["rerun", first.run_dir], cwd=project.root)
    assert again.code == 0, again.describe()
    assert _received(again.run_dir) == expected
    exact = run(["rerun", "--exact", first.run_dir], cwd=project.root)
    assert exact.code == 0, exact.describe()
    assert _received(exact.run_dir) == expected


def test_a_relative_path_of_the_launch_directory_warns_once_per_key(project: Project) -> None:
    entry = project.entry("print('ran')\n")
    project.write("data/train.csv", "x\n")
    extra = {"data": "data/train.csv", "copy": "{data}", "model": "resnet"}
    config = project.config(entry, extra=extra)
    result = run([config], cwd=project.root)
    assert result.code == 0, result.describe()
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"expyrun: warning: config.yml:{line}: key '{key}': 'data/train.csv' is a path from the "
        "launch directory, but the entry point runs in the run folder, where it does not exist "
        f"(use $EXPYRUN_CWD/data/train.csv or an absolute path; or list {key} in "
        "__run__.__no_path_warning__)"
        for key, line in (("data", 5), ("copy", 6))
    ], result.describe()
    quiet = project.config(entry, extra=extra, __no_path_warning__=["data", "copy"])
    silenced = run([quiet], cwd=project.root)
    assert silenced.code == 0, silenced.describe()
    assert "warning" not in silenced.stderr, silenced.describe()

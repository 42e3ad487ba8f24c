"""A --nproc 3 run whose output fills the disk, again and again on one tiny tmpfs.

Known defect (xfail, not strict: it fails in about 1 round in 3): a task's first entry
(`running`) is written before it has a reserve (run/tasks.write_task_record makes the
reserve only after that write); when the other tasks' output filled the disk first, the
write fails ("cannot write task N's record: No space left on device"), the task exits 2 and
the run is recorded killed or failed with that task's entry missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import Project, read_json, run
from test_faults import CHATTY, tiny_disk

__all__ = ["tiny_disk"]  # the fixture, used by name


@pytest.mark.xfail(reason="a task's first entry has no reserve on a full disk", strict=False)
@pytest.mark.timeout(300)
def test_every_round_of_a_disk_filled_by_the_tasks_ends_true(
    project: Project,
    tiny_disk: Path,
) -> None:
    config = project.config(project.entry(CHATTY))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    problems = []
    for round_number in range(10):
        result = run([config, "--nproc", "3"], cwd=project.root, timeout=120)
        run_dir = tiny_disk / "exp" / "exp.0"
        record = read_json(run_dir / "run.json")
        tasks = [task["status"] for task in record.get("tasks") or []]
        stray = [
            path.name for path in run_dir.rglob("*") if path.name.endswith((".tmp", "reserve"))
        ]
        if result.code != 0 or record["status"] != "succeeded" or tasks != ["succeeded"] * 3:
            problems.append(
                f"round {round_number}: exit {result.code}, {record['status']}, {tasks}"
            )
        if stray:
            problems.append(f"round {round_number}: left {stray}")
        shutil.rmtree(tiny_disk / "exp")
    assert not problems, "\n".join(problems)

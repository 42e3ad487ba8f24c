"""Faults are records, never internal errors: a full disk, a deleted run folder.

A full disk is a real one: a small tmpfs mounted for the test (root only; skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Project, read_json, run, start, wait_for


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


CHATTY = """
for i in range(50):
    print(f"line {i} " + "x" * 100_000, flush=True)
open(os.path.join(os.environ["EXPYRUN_CWD"], "finished"), "w").close()
print("entry finished normally", flush=True)
"""

CHECKPOINT = """
with open("checkpoint.bin", "wb") as f:
    try:
        while True:
            f.write(b"c" * 65536)
            f.flush()
    except OSError:
        pass
print("checkpoint written")
"""


def test_a_disk_filled_by_output_ends_in_a_true_record(project: Project, tiny_disk: Path) -> None:
    config = project.config(project.entry(CHATTY))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    result = run([config], cwd=project.root, timeout=120)
    assert result.code == 0, result.describe()
    assert (project.root / "finished").exists()  # the entry ran to its end
    assert "Traceback" not in result.stderr
    assert "cannot write outputs.log (No space left on device): the run goes on" in result.stderr
    # The terminal copy still has everything, the log what fit.
    assert "entry finished normally" in result.stdout
    record = read_json(tiny_disk / "exp" / "exp.0" / "run.json")
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    assert record["output_lost_bytes"] > 0
    assert record["output_lost_since"]
    logged = (tiny_disk / "exp" / "exp.0" / "outputs.log").stat().st_size
    assert logged + record["output_lost_bytes"] == len(result.stdout_bytes)
    assert not list((tiny_disk / "exp" / "exp.0").glob(".run.json*"))  # no temp, no reserve


def test_a_disk_filled_by_the_entry_keeps_its_success(project: Project, tiny_disk: Path) -> None:
    config = project.config(project.entry(CHECKPOINT))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    result = run([config], cwd=project.root, timeout=120)
    assert result.code == 0, result.describe()
    assert "Traceback" not in result.stderr
    run_dir = tiny_disk / "exp" / "exp.0"
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert not list(run_dir.glob(".run.json*"))


def test_a_run_folder_deleted_while_the_run_runs(project: Project) -> None:
    body = """
open("started", "w").close()
while os.path.exists(os.environ["EXPYRUN_RUN_DIR"]):
    time.sleep(0.01)
print("the entry goes on")
"""
    config = project.config(project.entry(body))
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "started").exists(), 30, "the entry to start")
        shutil.rmtree(run_dir)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert "cannot write the record: the run folder is gone" in err.decode()

"""The bundled example does what example/README.md says: Ctrl-C saves a checkpoint, exits 0."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from support import kill_group, start, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "example"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_slow_example_checkpoints_and_exits_cleanly_when_stopped(
    tmp_path: Path, signum: signal.Signals
) -> None:
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("outputs", "__pycache__"))
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as err:
        process = start(
            ["configs/experiments/sgd_slow.yml", "--debug"], cwd=project, stdout=None, stderr=err
        )
    try:
        logs = project / "outputs" / "DEBUG" / "sgd-slow"
        wait_for(
            lambda: any("epoch   1" in p.read_text() for p in logs.glob("*/exp.0/outputs.log")),
            30,
            "the first epoch in outputs.log",
        )
        process.send_signal(signum)  # to the supervisor, as `kill` or Ctrl-C in its terminal
        code = process.wait(timeout=30)
    finally:
        kill_group(process.pid)
        process.wait()
    [run_dir] = logs.glob("*/exp.0")
    log = (run_dir / "outputs.log").read_text()
    assert code == 0, stderr.read_text() + log
    assert "checkpoint saved at epoch" in log
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log
    assert (run_dir / "checkpoint.json").is_file()

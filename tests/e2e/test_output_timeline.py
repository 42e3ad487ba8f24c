"""outputs.index written by real runs: stretches in write order, streams kept, attempts appended.

The index is read back with `read_index` and checked against the log it describes: the chunks
cover the log exactly, and the markers an entry wrote to stdout and stderr in turn come back in
the order they were written, each from its own stream.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from support import Project, run, running_held_until, start, wait_for

from expyrun.run.output_index import INDEX_FILE, MERGED, STDERR, STDOUT, read_index

# Alternate streams, several lines a turn, with pauses longer than the coalescing time
# sometimes, so one stream's stretch is also split by time.
ALTERNATING_ENTRY = """
for i in range(300):
    stream = sys.stdout if i % 2 == 0 else sys.stderr
    for j in range(1 + i % 3):
        print(f"{'out' if stream is sys.stdout else 'err'} {i}.{j}", file=stream)
    stream.flush()
    if i % 50 == 0:
        time.sleep(0.03)
"""
EXPECTED = [
    f"{'out' if i % 2 == 0 else 'err'} {i}.{j}" for i in range(300) for j in range(1 + i % 3)
]
MARKER = re.compile(r"^(out|err) \d+\.\d+$")


def _streams_of_lines(run_dir: Path) -> list[tuple[int, str]]:
    """(stream, line) for each line of the log, in index order; checks the chunks tile it."""
    log = (run_dir / "outputs.log").read_bytes()
    chunks = list(read_index(run_dir))
    assert chunks, "no index written"
    assert chunks[0].offset == 0
    for before, after in itertools.pairwise(chunks):
        assert before.offset + before.length == after.offset
        assert before.time <= after.time
    assert chunks[-1].offset + chunks[-1].length == len(log)
    pairs: list[tuple[int, str]] = []
    for chunk in chunks:
        text = log[chunk.offset : chunk.offset + chunk.length].decode()
        assert text.endswith("\n"), f"a stretch ends mid-line: {text!r}"
        pairs += [(chunk.stream, line) for line in text.splitlines()]
    return pairs


def test_the_index_keeps_write_order_and_streams(project: Project) -> None:
    config = project.config(project.entry(ALTERNATING_ENTRY))
    result = run([config], cwd=project.root)
    assert result.code == 0, result.describe()
    pairs = _streams_of_lines(result.run_dir)
    assert [line for _, line in pairs] == EXPECTED
    for stream, line in pairs:
        assert stream == (STDOUT if line.startswith("out") else STDERR), line


def test_merged_output_is_indexed_as_one_stream(project: Project) -> None:
    config = project.config(project.entry(ALTERNATING_ENTRY))
    result = run([config, "--merge-output"], cwd=project.root)
    assert result.code == 0, result.describe()
    pairs = _streams_of_lines(result.run_dir)
    assert [line for _, line in pairs] == EXPECTED
    assert {stream for stream, _ in pairs} == {MERGED}


def test_a_detached_run_is_indexed(project: Project) -> None:
    config = project.config(project.entry(ALTERNATING_ENTRY))
    result = run([config, "--detach"], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = project.output / "exp" / "exp.0"
    waited = run(["logs", str(run_dir), "--follow"], cwd=project.root)
    assert waited.code == 0, waited.describe()
    assert [line for _, line in _streams_of_lines(run_dir)] == EXPECTED


def test_a_second_attempt_appends_to_the_index(project: Project) -> None:
    """A requeued Slurm job (its environment faked: no Slurm needed) runs attempt 2."""
    entry = project.entry(
        'print("out", os.environ["EXPYRUN_ATTEMPT"])\n'
        'print("err", os.environ["EXPYRUN_ATTEMPT"], file=sys.stderr)\n'
    )
    config = project.config(entry)
    job = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "index-test"}
    first = run([config], cwd=project.root, env={**job, "SLURM_RESTART_COUNT": "0"})
    assert first.code == 0, first.describe()
    second = run([config], cwd=project.root, env={**job, "SLURM_RESTART_COUNT": "1"})
    assert second.code == 0, second.describe()
    run_dir = first.run_dir
    assert second.run_dir == run_dir
    assert (run_dir / INDEX_FILE).read_bytes().count(b"EXPYIDX1") == 1  # one header
    lines = _streams_of_lines(run_dir)
    assert lines[:2] == [(STDOUT, "out 1"), (STDERR, "err 1")]
    assert lines[2][0] == STDERR  # the separator, expyrun's own line, stamped when written
    assert lines[2][1].startswith("===== expyrun: attempt 2 (Slurm job 4242, restart 1")
    assert lines[3:] == [(STDOUT, "out 2"), (STDERR, "err 2")]
    chunks = list(read_index(run_dir))
    separator = next(
        c for c in chunks if c.offset == (run_dir / "outputs.log").read_bytes().index(b"=====")
    )
    assert separator.time > chunks[0].time


def test_a_second_attempt_has_the_full_disk_reserve_as_its_entry_runs(project: Project) -> None:
    """The first attempt's last record used its reserve up (it became run.json): the second
    attempt's entry, which may fill the disk before `running` is written, has a new one."""
    entry = project.entry(
        'reserve = os.path.join(os.environ["EXPYRUN_RUN_DIR"], ".run.json.reserve")\n'
        'print("reserve", os.path.exists(reserve))\n'
        'open(os.path.join(os.environ["EXPYRUN_CWD"], "looked"), "w").close()\n'
    )
    config = project.config(entry)
    job = {"SLURM_JOB_ID": "4545", "SLURM_JOB_NAME": "reserve-test"}
    command = running_held_until("looked")
    for restart in ("0", "1"):
        (project.root / "looked").unlink(missing_ok=True)
        env = {**job, "SLURM_RESTART_COUNT": restart}
        result = run([config], cwd=project.root, env=env, command=command)
        assert result.code == 0, result.describe()
        assert not (result.run_dir / ".run.json.reserve").exists()  # it became run.json
    log = (result.run_dir / "outputs.log").read_text()
    assert log.count("reserve True") == 2, log


def test_a_run_whose_index_cannot_be_written_runs_and_logs(project: Project) -> None:
    config = project.config(project.entry('print("ok")'))
    # The run folder does not exist before the launch: block the index by a folder of its
    # name, made by a first run whose folder is then run again as attempt 2.
    job = {"SLURM_JOB_ID": "4343", "SLURM_JOB_NAME": "index-test"}
    first = run([config], cwd=project.root, env={**job, "SLURM_RESTART_COUNT": "0"})
    assert first.code == 0, first.describe()
    index = first.run_dir / INDEX_FILE
    index.unlink()
    index.mkdir()
    second = run([config], cwd=project.root, env={**job, "SLURM_RESTART_COUNT": "1"})
    assert second.code == 0, second.describe()
    assert second.record["status"] == "succeeded"
    assert second.log.count(b"ok\n") == 2
    assert index.is_dir()


def test_the_index_is_written_while_the_run_runs(project: Project) -> None:
    """Records reach outputs.index within FLUSH_SECONDS even when the output then stops."""
    entry = project.entry(
        """
print("first", flush=True)
print("second", file=sys.stderr, flush=True)
deadline = time.monotonic() + 60
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
"""
    )
    process = start([project.config(entry)], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        chunks = wait_for(
            lambda: [c.stream for c in read_index(run_dir)] == [STDOUT, STDERR],
            20,
            "the index of the first two lines while the run waits",
        )
        assert chunks
        assert process.poll() is None  # still running: written by the poll loop, not the end
    finally:
        (run_dir / "go").touch()
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_each_task_of_a_multi_task_run_has_its_own_index_and_end_report(project: Project):
    entry = project.entry(
        """
rank = int(os.environ["RANK"])
print("out", rank, flush=True)
print("err", rank, file=sys.stderr, flush=True)
return {"rank": rank}
"""
    )
    result = run([project.config(entry), "--nproc", "2"], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = result.run_dir
    assert (run_dir / "outputs.index").is_file()
    assert (run_dir / "outputs.task1.index").is_file()
    for rank, log in enumerate(["outputs.log", "outputs.task1.log"]):
        text = (run_dir / log).read_bytes()
        chunks = list(read_index(run_dir, log=log))
        streams = [(c.stream, text[c.offset : c.offset + c.length]) for c in chunks]
        assert streams == [(STDOUT, f"out {rank}\n".encode()), (STDERR, f"err {rank}\n".encode())]
    assert result.record["result"] == {"rank": 0}  # task 0's record is the run's
    assert not list(run_dir.glob(".end_report*"))
    closing = [line for line in result.stderr.splitlines() if " succeeded in " in line]
    assert sorted(line.split(":")[1].strip() for line in closing) == ["task 0 of 2", "task 1 of 2"]

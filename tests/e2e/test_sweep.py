"""Sweeps through the real CLI: expansion, preview, running, failures, resume (issue 15)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Project, Result, read_json, run

# An entry that records what it got (config, CUDA_VISIBLE_DEVICES, times) in its run folder
# (its cwd), fails when `lr` equals `fail_on`, and returns a result.
ENTRY = """
start = time.time()
time.sleep(config.get("sleep", 0))
with open("entry.json", "w") as file:
    import json
    json.dump({"config": config, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "start": start, "end": time.time()}, file)
print("trained", config["lr"], config["seed"])
if config["lr"] == config.get("fail_on"):
    raise RuntimeError("diverged at lr %s" % config["lr"])
return {"loss": config["lr"]}
"""
MEMBER_LINE = re.compile(r"^expyrun: (?:warning: )?\[(\d+)/(\d+)\] (\w+) in .* -> (.+)$", re.M)


def _config(project: Project, **extra: Any) -> Path:
    entry = project.entry(ENTRY)
    values = {"lr": 0.1, "seed": 0, "sizes": [8, 8], "model": "mlp", "batch": 32, **extra}
    return project.config(entry, name="lr{lr}-s{seed}", extra=values)


def _members(result: Result) -> dict[int, tuple[str, Path]]:
    """Member number -> (status, run folder), from the lines printed as members end."""
    return {int(m[0]): (m[2], Path(m[3])) for m in MEMBER_LINE.findall(result.stderr)}


def _entry_config(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "entry.json")["config"]


def _run_folders(project: Project) -> list[Path]:
    return sorted(project.output.glob("*/exp.*"))


def test_grid_runs_every_member_in_order_each_an_ordinary_run(project: Project) -> None:
    config = _config(project)
    result = run(
        [config, "--sweep", "lr", "[0.1, 0.01]", "--sweep", "seed", "range(0, 3)"],
        cwd=project.root,
    )
    assert result.code == 0, result.describe()
    members = _members(result)
    assert sorted(members) == [1, 2, 3, 4, 5, 6]
    expected = [(lr, seed) for lr in (0.1, 0.01) for seed in (0, 1, 2)]  # first slowest
    for number, (lr, seed) in enumerate(expected, start=1):
        status, run_dir = members[number]
        assert status == "succeeded"
        assert run_dir == project.output / f"lr{lr}-s{seed}" / "exp.0"
        record = read_json(run_dir / "run.json")
        sweep = record["sweep"]
        assert (sweep["index"], sweep["count"]) == (number, 6)
        assert sweep["values"] == {"lr": lr, "seed": seed}
        assert record["status"] == "succeeded"
        assert _entry_config(run_dir)["lr"] == lr
        assert "__sweep__" not in (run_dir / "raw_config.yml").read_text()
    ids = {read_json(d / "run.json")["sweep"]["id"] for _, d in members.values()}
    assert len(ids) == 1
    sweep_dir = project.output / ".sweeps" / ids.pop()
    recorded = read_json(sweep_dir / "sweep.json")
    assert recorded["state"] == "ended"
    assert [m["status"] for m in recorded["members"]] == ["succeeded"] * 6
    assert [m["run_dir"] for m in recorded["members"]] == [str(members[n][1]) for n in range(1, 7)]
    assert [d["keys"] for d in recorded["dimensions"]] == [["lr"], ["seed"]]
    assert "STATUS" in result.stdout
    assert result.stdout.count("succeeded") == 6


def test_paired_dimension_and_list_valued_key(project: Project) -> None:
    config = _config(project)
    result = run(
        [
            config,
            "--sweep",
            "model,batch",
            "[[resnet, 256], [vit, 64]]",
            "--sweep",
            "sizes",
            "[[16, 16], [4, 2, 1]]",
        ],
        cwd=project.root,
    )
    assert result.code == 0, result.describe()
    got = sorted(
        (c["model"], c["batch"], tuple(c["sizes"]))
        for c in (_entry_config(d) for _, d in _members(result).values())
    )
    assert got == [
        ("resnet", 256, (4, 2, 1)),
        ("resnet", 256, (16, 16)),
        ("vit", 64, (4, 2, 1)),
        ("vit", 64, (16, 16)),
    ]


def test_config_sweep_is_inherited_replaced_by_the_cli_and_never_given_to_the_entry(
    project: Project,
) -> None:
    _config(project)
    base = yaml.safe_load((project.root / "config.yml").read_text())
    base["__sweep__"] = {"seed": [1, 2]}
    project.write("base.yml", yaml.safe_dump(base))
    project.write("child.yml", "__default__: ./base.yml\n__sweep__:\n  lr: 'range(1, 3)'\n")
    result = run(["child.yml"], cwd=project.root)
    assert result.code == 0, result.describe()
    configs = [_entry_config(d) for _, d in _members(result).values()]
    assert sorted((c["seed"], c["lr"]) for c in configs) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all("__sweep__" not in c for c in configs)
    # A --sweep of a key the config sweeps replaces that dimension.
    replaced = run(["child.yml", "--sweep", "seed", "7", "--print-config", "--json"], project.root)
    assert replaced.code == 0, replaced.describe()
    document = json.loads(replaced.stdout)
    assert [m["values"] for m in document["members"]] == [
        {"seed": 7, "lr": 1},
        {"seed": 7, "lr": 2},
    ]


def test_preview_lists_members_and_creates_nothing(project: Project) -> None:
    config = _config(project)
    args = [config, "--sweep", "lr", "0.1,0.01", "--print-config"]
    table = run(args, cwd=project.root)
    assert table.code == 0, table.describe()
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["INDEX", "lr", "NAME", "ACTION"]
    assert lines[1].split() == ["1", "0.1", "lr0.1-s0", "run"]
    as_json = json.loads(run([*args, "--json"], cwd=project.root).stdout)
    assert [m["name"] for m in as_json["members"]] == ["lr0.1-s0", "lr0.01-s0"]
    assert not project.output.exists()


def test_a_failing_member_is_reported_when_it_ends_and_the_others_complete(
    project: Project,
) -> None:
    config = _config(project, fail_on=0.01)
    result = run([config, "--sweep", "lr", "0.1,0.01,0.5"], cwd=project.root)
    assert result.code == 1, result.describe()
    members = _members(result)
    assert {n: s for n, (s, _) in members.items()} == {1: "succeeded", 2: "failed", 3: "succeeded"}
    line = next(x for x in result.stderr.splitlines() if "[2/3]" in x)
    assert "failed in" in line
    assert "(exit 1" in line
    assert "lr=0.01" in line
    # The failure is printed when it ends, before the last member's line.
    assert result.stderr.index("[2/3]") < result.stderr.index("[3/3]")
    assert "RuntimeError" in (members[2][1] / "outputs.log").read_text()
    assert "trained" not in result.stdout + result.stderr  # members' output is in their logs


def test_resume_reruns_exactly_the_failed_member_in_a_new_folder(project: Project) -> None:
    config = _config(project, fail_on=0.01)
    args = [config, "--sweep", "lr", "0.1,0.01,0.5"]
    first = run(args, cwd=project.root)
    assert first.code == 1, first.describe()
    preview = run([*args, "--print-config"], cwd=project.root)
    assert "2 done, 1 to rerun, 0 new" in preview.stderr, preview.describe()
    before = _run_folders(project)
    second = run(args, cwd=project.root)
    assert second.code == 1, second.describe()
    assert "2 done, 1 to rerun, 0 new" in second.stderr
    members = _members(second)
    assert list(members) == [2]
    assert members[2][1] == project.output / "lr0.01-s0" / "exp.1"
    assert set(before) < set(_run_folders(project))  # nothing overwritten
    assert read_json(before[0] / "run.json")["status"] in ("succeeded", "failed")


def test_sweep_resume_by_id_after_the_failure_is_fixed_in_the_code(project: Project) -> None:
    config = _config(project, fail_on=0.01)
    first = run([config, "--sweep", "lr", "0.1,0.01"], cwd=project.root)
    assert first.code == 1
    sweep_id = read_json(_members(first)[1][1] / "run.json")["sweep"]["id"]
    code = (project.root / "pkg" / "main.py").read_text().replace("raise RuntimeError", "pass #")
    (project.root / "pkg" / "main.py").write_text(code)
    resumed = run(["sweep", "resume", sweep_id, "outputs"], cwd=project.root)
    assert resumed.code == 0, resumed.describe()
    assert f"resuming sweep {sweep_id}: 1 done, 1 to rerun, 0 new" in resumed.stderr
    listed = run(["ls", "--sweep", sweep_id, "outputs"], cwd=project.root)
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0][:4] == ["INDEX", "lr", "STATUS", "DURATION"]
    assert [row[2] for row in rows[1:]] == ["succeeded", "succeeded"]
    assert rows[2][-1] == "outputs/lr0.01-s0/exp.1"


def test_a_changed_definition_is_said_and_starts_a_new_sweep(project: Project) -> None:
    config = _config(project)
    args = [config, "--sweep", "lr", "0.1,0.01"]
    assert run(args, cwd=project.root).code == 0
    text = config.read_text().replace("seed: 0", "seed: 5")
    config.write_text(text)
    again = run(args, cwd=project.root)
    assert again.code == 0, again.describe()
    assert "the sweep definition changed since sweep" in again.stderr
    assert sorted(_members(again)) == [1, 2]
    assert len(list((project.output / ".sweeps").glob("*/sweep.json"))) == 2


def test_parallel_members_never_share_a_gpu(project: Project) -> None:
    config = _config(project, sleep=0.3)
    result = run(
        [config, "--sweep", "seed", "range(0, 6)", "--parallel", "2", "--gpus", "0,1"],
        cwd=project.root,
        timeout=120,
    )
    assert result.code == 0, result.describe()
    entries = [read_json(d / "entry.json") for _, d in _members(result).values()]
    assert {e["cuda"] for e in entries} == {"0", "1"}
    for _, run_dir in _members(result).values():
        record = read_json(run_dir / "run.json")
        assert record["sweep"]["cuda_visible_devices"] == read_json(run_dir / "entry.json")["cuda"]
    for gpu in ("0", "1"):
        spans = sorted((e["start"], e["end"]) for e in entries if e["cuda"] == gpu)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"GPU {gpu} was given to two running members"
    at_most_two = sorted((e["start"], e["end"]) for e in entries)
    for i, (start, _) in enumerate(at_most_two):
        assert sum(1 for s, e in at_most_two[:i] if e > start) <= 1


def test_fail_fast_starts_no_more_members(project: Project) -> None:
    config = _config(project, fail_on=0.1)
    result = run([config, "--sweep", "lr", "0.1,0.2,0.3", "--fail-fast"], cwd=project.root)
    assert result.code == 1, result.describe()
    assert list(_members(result)) == [1]
    assert "not started" in result.stdout


def test_sample_draws_distinct_members_reproducibly(project: Project) -> None:
    config = _config(project)
    args = [config, "--sweep", "seed", "range(0, 100)", "--sample", "5", "--seed", "3"]
    args += ["--print-config", "--json"]
    first = json.loads(run(args, cwd=project.root).stdout)["members"]
    second = json.loads(run(args, cwd=project.root).stdout)["members"]
    seeds = [m["values"]["seed"] for m in first]
    assert seeds == [m["values"]["seed"] for m in second]
    assert len(set(seeds)) == 5
    assert seeds == sorted(seeds)


def test_duplicate_run_names_warn_and_are_an_error_under_strict(project: Project) -> None:
    entry = project.entry(ENTRY)
    config = project.config(entry, name="same", extra={"lr": 0.1, "seed": 0})
    args = [config, "--sweep", "seed", "1,2", "--print-config"]
    warned = run(args, cwd=project.root)
    assert warned.code == 0
    assert "__name__ does not use the swept keys seed" in warned.stderr
    strict = run([*args, "--strict"], cwd=project.root)
    assert strict.code == 2
    assert "__name__ does not use the swept keys seed" in strict.stderr


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        pytest.param(
            ["--sweep", "lrr", "0.1,0.2"],
            r"key 'lrr': no such key to override \(did you mean 'lr'\?\)",
            id="unknown-key",
        ),
        pytest.param(
            ["--sweep", "lr", "fast,0.2"], r"key 'lr': cannot override with 'fast'", id="typed"
        ),
        pytest.param(["--sweep", "lr", "[]"], r"--sweep lr: no value to sweep over", id="empty"),
        pytest.param(["--sweep", "lr", "range(1, x)"], r"bad range", id="range"),
        pytest.param(
            ["--sweep", "model,batch", "[[a, 1], [b]]"], r"each value sets 2 keys", id="paired"
        ),
        pytest.param(["--sweep", "lr"], r"--sweep needs a key and its values", id="no-values"),
        pytest.param(
            ["--sweep", "lr", "1,2", "--parallel", "0"], r"--parallel takes", id="parallel"
        ),
        pytest.param(
            ["--sweep", "lr", "1,2", "--gpus", "0", "--gpus-per-run", "2"],
            r"only 1 GPUs",
            id="gpus",
        ),
        pytest.param(["--parallel", "2"], r"no sweep dimension", id="flag-without-sweep"),
        pytest.param(
            ["--sweep", "lr", "1,2", "--slurm", "--fail-fast"], r"--fail-fast .*--slurm", id="slurm"
        ),
        pytest.param(["--sweep", "lr", "1,2", "--nproc", "2"], r"--nproc", id="nproc"),
    ],
)
def test_bad_sweep_input_is_one_line_exit_2_nothing_created(
    project: Project, args: list[str], pattern: str
) -> None:
    result = run([_config(project), *args], cwd=project.root)
    assert result.code == 2, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("expyrun: error: "), result.describe()
    assert re.search(pattern, lines[0]), result.describe()
    assert not project.output.exists()


def test_gpus_auto_without_nvidia_smi_runs_without_gpus(project: Project) -> None:
    config = _config(project)
    result = run(
        [config, "--sweep", "lr", "0.1,0.2", "--gpus", "auto"],
        cwd=project.root,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.code == 0, result.describe()
    assert "--gpus auto: no GPU found" in result.stderr
    assert all(read_json(d / "entry.json")["cuda"] is None for _, d in _members(result).values())


def test_a_bad_config_sweep_is_reported_at_its_line(project: Project) -> None:
    _config(project)
    project.write("child.yml", "__default__: ./config.yml\n__sweep__:\n  lrr: [1, 2]\n")
    result = run(["child.yml"], cwd=project.root)
    assert result.code == 2, result.describe()
    assert result.stderr == (
        "expyrun: error: child.yml:3: key 'lrr': no such key to override (did you mean 'lr'?)\n"
    )
    assert not project.output.exists()


def test_verbose_streams_the_output_of_one_member_at_a_time(project: Project) -> None:
    config = _config(project)
    result = run([config, "--sweep", "seed", "1,2", "--verbose"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.stdout.splitlines()[:2] == ["trained 0.1 1", "trained 0.1 2"]
    quiet = run([config, "--sweep", "seed", "3,4", "--verbose", "--parallel", "2"], project.root)
    assert "trained" not in quiet.stdout


def test_ls_sweep_json_and_stop_of_an_ended_sweep(project: Project) -> None:
    config = _config(project)
    result = run([config, "--sweep", "seed", "1,2"], cwd=project.root)
    sweep_id = read_json(_members(result)[1][1] / "run.json")["sweep"]["id"]
    listed = json.loads(run(["ls", "--sweep", sweep_id, "--json"], cwd=project.root).stdout)
    assert listed["state"] == "ended"
    assert [m["values"] for m in listed["members"]] == [{"seed": "1"}, {"seed": "2"}]
    assert [m["status"] for m in listed["members"]] == ["succeeded", "succeeded"]
    stopped = run(["stop", sweep_id], cwd=project.root)
    assert stopped.code == 0, stopped.describe()
    assert f"sweep {sweep_id} is not running (ended)" in stopped.stderr
    missing = run(["ls", "--sweep", "0123abcd"], cwd=project.root)
    assert missing.code == 2
    assert "no sweep '0123abcd'" in missing.stderr


def test_max_failures_stops_starting_after_k_failures(project: Project) -> None:
    config = _config(project, fail_on=0.0)
    pairs = "[[1.0, 1.0], [2.0, 2.0], [3.0, 0.0], [4.0, 4.0]]"  # members 1, 2 and 4 fail
    result = run([config, "--sweep", "lr,fail_on", pairs, "--max-failures", "2"], cwd=project.root)
    assert result.code == 1, result.describe()
    assert {n: s for n, (s, _) in _members(result).items()} == {1: "failed", 2: "failed"}
    assert "2 failed: starting no more members" in result.stderr
    assert result.stdout.count("not started") == 2


def test_gpus_alone_run_one_member_per_set_of_gpus(project: Project) -> None:
    config = _config(project, sleep=0.3)
    result = run(
        [config, "--sweep", "seed", "range(0, 4)", "--gpus", "0,1,2,3", "--gpus-per-run", "2"],
        cwd=project.root,
        timeout=120,
    )
    assert result.code == 0, result.describe()
    entries = [read_json(d / "entry.json") for _, d in _members(result).values()]
    assert {e["cuda"] for e in entries} <= {"0,1", "2,3"}
    spans = sorted((e["start"], e["end"], e["cuda"]) for e in entries)
    for i, (start, _, cuda) in enumerate(spans):
        overlapping = [c for s, e, c in spans[:i] if e > start]
        assert cuda not in overlapping
        assert len(overlapping) <= 1


def test_a_relative_path_warning_is_said_once_for_the_sweep(project: Project) -> None:
    project.write("data/train.csv", "x\n")
    config = _config(project, path="data/train.csv")
    result = run([config, "--sweep", "seed", "1,2,3"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.stderr.count("is a path from the launch directory") == 1, result.describe()

"""`ls --keys/--where/--sort/--last/--changed/--json/--config` through the real CLI.

Four runs are launched for the module (tags given with --tag), then `result` is written into
their records as run.json holds it (the mapping the entry returned): the table each test
expects is checked by hand against this plan.

    run   model   depth  lr     exit  result.acc  tags             (launched in this order)
    a     resnet  18     0.1    0     0.8         baseline
    b     vit     18     0.001  0     0.95        -
    c     resnet  18     0.9    3     -           -
    d     resnet  50     0.01   0     0.91        baseline,deep
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Project, read_json, run

ENTRY = "sys.exit(config['exit'])"
PLAN = {
    "a": (["--training.lr", "0.1"], 0.8, ["baseline"]),
    "b": (["--training.lr", "0.001", "--model.name", "vit"], 0.95, None),
    "c": (["--training.lr", "0.9", "--exit", "3"], None, None),
    "d": (["--training.lr", "0.01", "--model.depth", "50"], 0.91, ["baseline", "deep"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("ls") / "project")
    entry = project.entry(ENTRY)
    config = project.config(
        entry,
        name="{label}",
        extra={
            "label": "x",
            "exit": 0,
            "model": {"name": "resnet", "depth": 18},
            "training": {"lr": 0.1},
        },
    )
    for label, (args, acc, tags) in PLAN.items():
        tag_args = [arg for tag in tags or () for arg in ("--tag", tag)]
        result = run([config, "--label", label, *args, *tag_args], cwd=project.root)
        assert result.code == (3 if label == "c" else 0), result.describe()
        record = result.record
        assert record["tags"] == (tags or [])
        if acc is not None:
            record["result"] = {"acc": acc}
            (result.run_dir / "run.json").write_text(json.dumps(record))
    return project


def _ls(project: Project, *args: str) -> list[list[str]]:
    result = run(["ls", *args], cwd=project.root)
    assert result.code == 0, result.describe()
    return [line.split() for line in result.stdout.splitlines()]


def _labels(rows: list[list[str]]) -> list[str]:
    return [row[0].split("/")[1] for row in rows[1:]]


def test_keys_add_config_result_and_record_columns(runs: Project) -> None:
    rows = _ls(runs, "--keys", "training.lr,model.name,result.acc", "--keys", "tags")
    assert rows[0][-4:] == ["training.lr", "model.name", "result.acc", "tags"]
    # The default PATH is the current folder; RUN, STATUS, then the keys (last columns).
    assert [(row[0], row[1], *row[-4:]) for row in rows[1:]] == [
        ("outputs/d/exp.0", "succeeded", "0.01", "resnet", "0.91", "baseline,deep"),
        ("outputs/c/exp.0", "failed", "0.9", "resnet", "-", "-"),
        ("outputs/b/exp.0", "succeeded", "0.001", "vit", "0.95", "-"),
        ("outputs/a/exp.0", "succeeded", "0.1", "resnet", "0.8", "baseline"),
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param("training.lr<0.05 and status=succeeded", ["d", "b"], id="number-and-text"),
        pytest.param("training.lr<1e-2", ["b"], id="exponent"),
        pytest.param("tag=baseline", ["d", "a"], id="tag"),
        pytest.param("result.acc>=0.9", ["d", "b"], id="result"),
        pytest.param("name~^[bc]$", ["c", "b"], id="regex"),
        pytest.param("model.name<s", ["d", "c", "a"], id="text-order"),
        pytest.param("exit!=0 or (tag=deep and not model.depth=18)", ["d", "c"], id="nested"),
        pytest.param("config.model.depth=50", ["d"], id="config-prefix"),
        pytest.param("record.exit_code=3", ["c"], id="record-prefix"),
    ],
)
def test_where_filters(runs: Project, where: str, expected: list[str]) -> None:
    assert _labels(_ls(runs, "outputs", "--where", where)) == expected


def test_sort_and_last(runs: Project) -> None:
    assert _labels(_ls(runs, "--sort", "-result.acc")) == ["b", "d", "a", "c"]  # missing last
    assert _labels(_ls(runs, "--sort", "training.lr")) == ["b", "d", "a", "c"]
    assert _labels(_ls(runs, "--sort=model.name")) == ["d", "c", "a", "b"]  # ties: newest first
    # --last takes the N newest, then --sort orders them.
    assert _labels(_ls(runs, "--last", "2")) == ["d", "c"]
    assert _labels(_ls(runs, "--last", "3", "--sort", "training.lr")) == ["b", "d", "c"]


def test_changed_shows_the_config_keys_that_differ(runs: Project) -> None:
    rows = _ls(runs, "--changed")
    keys = ["exit", "label", "model.depth", "model.name", "training.lr"]
    assert rows[0][-5:] == keys
    assert [row[-5:] for row in rows[1:]] == [
        ["0", "d", "50", "resnet", "0.01"],
        ["3", "c", "18", "resnet", "0.9"],
        ["0", "b", "18", "vit", "0.001"],
        ["0", "a", "18", "resnet", "0.1"],
    ]
    # Among the resnet runs of depth 18, only these differ.
    rows = _ls(runs, "--changed", "--where", "model.name=resnet and model.depth=18")
    assert rows[0][-3:] == ["exit", "label", "training.lr"]


def test_json_carries_config_result_tags_and_the_keys(runs: Project) -> None:
    result = run(["ls", "--json", "--keys", "training.lr,result.acc", "--last", "1"], runs.root)
    [data] = json.loads(result.stdout)
    assert data["config"]["training"] == {"lr": 0.01}
    assert data["config"]["model"] == {"name": "resnet", "depth": 50}
    assert (data["result"], data["tags"]) == ({"acc": 0.91}, ["baseline", "deep"])
    assert data["values"] == {"training.lr": 0.01, "result.acc": 0.91}


def test_keys_are_read_from_config_yml_when_config_json_is_absent(runs: Project) -> None:
    """Runs made before config.json existed: the same values, from config.yml."""
    copy = runs.root.parent / "old"
    copy.mkdir(exist_ok=True)
    old = copy / "r" / "exp.0"
    if not old.exists():
        old.parent.mkdir()
        source = runs.output / "d" / "exp.0"
        old.mkdir()
        for name in ("run.json", "config.yml"):
            (old / name).write_bytes((source / name).read_bytes())
    rows = _ls(runs, str(copy), "--keys", "training.lr,model.depth,config.__run__.__name__")
    assert rows[1][-3:] == ["0.01", "50", "d"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--where", "training.lr < and x"],
            "--where: column 15: expected a value after '<', found the word 'and': "
            "training.lr < ^and x",
            id="grammar",
        ),
        pytest.param(
            ["--where", "training.lrr<1"],
            "--where: column 1: unknown key 'training.lrr': no run listed has it: "
            "^training.lrr<1 (did you mean 'training.lr'?)",
            id="unknown-key",
        ),
        pytest.param(
            ["--keys", "model.nme"],
            "--keys: unknown key 'model.nme': no run listed has it (did you mean 'model.name'",
            id="unknown-column",
        ),
        pytest.param(
            ["--sort", "-resul.acc"],
            "--sort: unknown key 'resul.acc': no run listed has it (did you mean 'result.acc'?)",
            id="unknown-sort",
        ),
        pytest.param(["--where", "(exit=0"], "is not closed", id="unclosed"),
        pytest.param(
            ["--where", "name~'a{99999999999}'"],
            "--where: column 1: not a regular expression (the repetition number is too large)",
            id="regex-too-large",
        ),
        pytest.param(["--last", "0"], "--last: expected a positive count", id="last"),
        pytest.param(["outputs", "--config", "x.yml"], "not both", id="path-and-config"),
    ],
)
def test_bad_queries_are_one_line_exit_2(runs: Project, args: list[str], message: str) -> None:
    result = run(["ls", *args], cwd=runs.root)
    assert result.code == 2, result.describe()
    [line] = result.stderr.splitlines()
    assert line.startswith("expyrun: error: ")
    assert message in line
    assert result.stdout == ""


def test_an_empty_folder_hints_at_the_output_dir_of_the_configs_here(tmp_path: Path) -> None:
    project = Project(tmp_path / "code")
    entry = project.entry("pass")
    project.output = tmp_path / "elsewhere" / "outputs"
    config = project.config(entry, name="r")
    made = run([config], cwd=project.root)
    assert made.code == 0, made.describe()
    listing = run(["ls"], cwd=project.root)
    assert listing.code == 0, listing.describe()
    assert listing.stdout.splitlines() == ["RUN  STATUS  STARTED  DURATION  EXIT  PEAK MEM"]
    assert listing.stderr == (
        "expyrun: no run under .; the configs here write to ../elsewhere/outputs: "
        "expyrun ls ../elsewhere/outputs\n"
    )
    by_config = run(["ls", "--config", "config.yml"], cwd=project.root)
    assert by_config.code == 0, by_config.describe()
    assert [line.split()[:2] for line in by_config.stdout.splitlines()[1:]] == [
        [str(made.run_dir), "succeeded"]
    ]
    (tmp_path / "empty").mkdir()
    nothing = run(["ls"], cwd=tmp_path / "empty")
    assert "pass the folder of the runs (expyrun ls OUTPUT_DIR)" in nothing.stderr


def test_ls_ignores_dot_folders(runs: Project) -> None:
    hidden = runs.output / ".trash" / "x" / "exp.0"
    hidden.mkdir(parents=True, exist_ok=True)
    record = read_json(runs.output / "a" / "exp.0" / "run.json")
    (hidden / "run.json").write_text(json.dumps(record))
    try:
        assert _labels(_ls(runs, "outputs")) == ["d", "c", "b", "a"]
    finally:
        (hidden / "run.json").unlink()

"""`sweep.member.remove_unrecorded`: only this sweep's never-noted `prepared` folders go."""

from __future__ import annotations

import json
from pathlib import Path

from expyrun.sweep import record
from expyrun.sweep.member import remove_unrecorded


def _run(parent: Path, name: str, status: str, sweep_id: str | None) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    data: dict[str, object] = {"status": status}
    if sweep_id is not None:
        data["sweep"] = {"id": sweep_id, "index": 0, "count": 2, "values": {}}
    (folder / "run.json").write_text(json.dumps(data))
    return folder


def test_only_the_sweeps_unnoted_prepared_folders_are_removed(tmp_path: Path) -> None:
    names = tmp_path / "out" / "s0"
    sweep_folder = tmp_path / "out" / ".sweeps" / "abc"
    sweep_folder.mkdir(parents=True)
    orphan = _run(names, "exp.0", "prepared", "abc")
    noted = _run(names, "exp.1", "prepared", "abc")
    record.append_member(sweep_folder, 0, "d0", noted)
    other_sweep = _run(names, "exp.2", "prepared", "zzz")
    ran = _run(names, "exp.3", "killed", "abc")
    plain = _run(names, "exp.4", "prepared", None)
    not_a_run = _run(names, "notes", "prepared", "abc")
    unreadable = names / "exp.5"
    unreadable.mkdir()
    (unreadable / "run.json").write_text("{")

    removed = remove_unrecorded(sweep_folder, "abc", [names, names, tmp_path / "missing"])

    assert removed == 1
    assert not orphan.exists()
    for kept in (noted, other_sweep, ran, plain, not_a_run, unreadable):
        assert kept.exists(), kept

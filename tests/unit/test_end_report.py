"""The worker's end report, in-process: error lines, JSON checks, the repr and its warning, and
the supervisor's reading of the report and naming of a signal death."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from expyrun.run import worker
from expyrun.run.ending import read_end_report, signal_error


class DataError(Exception):
    pass


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        pytest.param(ValueError("loss is nan"), "ValueError: loss is nan", id="builtin"),
        pytest.param(KeyError("lr"), "KeyError: 'lr'", id="key-error-repr"),
        pytest.param(RuntimeError(), "RuntimeError", id="no-message"),
        pytest.param(SystemExit(3), "SystemExit: 3", id="sys-exit"),
        pytest.param(
            DataError("bad\nshard 3"), f"{__name__}.DataError: bad ...", id="module-multiline"
        ),
        pytest.param(BrokenStr(), f"{__name__}.BrokenStr", id="broken-str"),
        pytest.param(ValueError("x" * 900), "ValueError: " + "x" * 488, id="cut"),
    ],
)
def test_error_line(exc: BaseException, line: str) -> None:
    assert worker._error_line(exc) == line


NOT_JSON = [
    pytest.param([1, 2], id="a-list"),
    pytest.param(0.5, id="a-number"),
    pytest.param({1: "a"}, id="an-int-key"),
    pytest.param({"s": {1, 2}}, id="a-set-inside"),
    pytest.param({"deep": [object()]}, id="an-object-deep"),
]


def test_a_mapping_of_json_values_is_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    value = {"a": 1, "b": [1.5, "x", None, True, {"c": []}], "t": (1, 2)}
    assert worker._result_report(value) == {"result": value}
    assert worker._result_report(None) == {}
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", NOT_JSON)
def test_anything_else_is_its_repr_with_a_warning(
    value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert worker._result_report(value) == {"result": repr(value), "result_repr": True}
    assert capsys.readouterr().err.startswith("expyrun: warning: the entry point returned ")


def test_a_cycle_is_not_json_and_its_repr_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    assert worker._result_report(loop) == {"result": "{'self': {...}}", "result_repr": True}


def test_a_mapping_json_cannot_write_is_its_repr(capsys: pytest.CaptureFixture[str]) -> None:
    """An int past the 4,300 digits str() allows: json.dumps raises while writing the report."""
    report = worker._result_report({"big": 10**5000})
    assert report["result_repr"] is True
    assert report["result"].startswith("<dict object, repr failed: ValueError: ")
    assert capsys.readouterr().err.startswith("expyrun: warning: the entry point returned ")


def test_a_long_repr_is_cut() -> None:
    report = worker._result_report(list(range(100_000)))
    assert len(report["result"]) == worker.RESULT_REPR_CHARS + 4


def test_the_report_is_written_only_by_the_worker_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    monkeypatch.setitem(worker._END_REPORT, "path", str(path))
    monkeypatch.setitem(worker._END_REPORT, "pid", -1)  # as in a forked child
    worker._write_end_report({"error": "x"})
    assert not path.exists()
    monkeypatch.setitem(worker._END_REPORT, "pid", __import__("os").getpid())
    worker._write_end_report({"result": {"acc": 1}})
    assert json.loads(path.read_text()) == {"result": {"acc": 1}}
    assert read_end_report(path) == {"result": {"acc": 1}}
    assert not path.exists()  # read once, then removed
    assert read_end_report(path) == {}
    path.write_text("[1, 2")
    assert read_end_report(path) == {}


@pytest.mark.parametrize(
    ("stop", "after_grace", "died_of", "error"),
    [
        pytest.param(signal.SIGTERM, False, signal.SIGTERM, "SIGTERM", id="stopped"),
        pytest.param(None, False, signal.SIGINT, "SIGINT", id="ctrl-c-before-we-saw-it"),
        pytest.param(
            signal.SIGTERM, True, signal.SIGKILL, "SIGTERM, then killed by SIGKILL", id="grace"
        ),
        pytest.param(None, False, signal.SIGKILL, "killed by SIGKILL", id="oom-killer"),
        pytest.param(None, False, signal.SIGSEGV, "killed by SIGSEGV", id="segfault"),
    ],
)
def test_signal_error(stop: int | None, after_grace: bool, died_of: int, error: str) -> None:
    assert signal_error(stop, after_grace, died_of) == error

"""The terminal copy to each kind of sink: a pipe (splice), a file (copy_file_range), a file
opened for appending (`>>`, which copy_file_range refuses: read back and written), byte-exact.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from support import EXPYRUN, Project, child_env

ENTRY = """
import random
rng = random.Random(11)
digest = __import__("hashlib").sha256()
for i in range(400):
    chunk = bytes(rng.getrandbits(8) for _ in range(97)) * rng.choice([1, 50, 700])
    if i % 3:
        sys.stdout.buffer.write(chunk)
    else:
        sys.stdout.flush()
        os.write(1, chunk)
    digest.update(chunk)
sys.stdout.flush()
open("expected.sha256", "w").write(digest.hexdigest())
"""


@pytest.mark.parametrize("how", ["file", "append", "pipe"])
def test_the_terminal_copy_is_byte_exact_to_any_sink(project: Project, how: str) -> None:
    config = project.config(project.entry(ENTRY))
    out = project.root / "terminal.out"
    prefix = b"kept\n" if how == "append" else b""
    out.write_bytes(prefix)
    flags = os.O_WRONLY | (os.O_APPEND if how == "append" else os.O_TRUNC)
    fd = os.open(out, flags)
    try:
        if how == "pipe":
            process = subprocess.run(
                [*EXPYRUN, config],
                cwd=project.root,
                env=child_env(),
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            copied = process.stdout
        else:
            process = subprocess.run(
                [*EXPYRUN, config],
                cwd=project.root,
                env=child_env(),
                stdout=fd,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            copied = out.read_bytes()
    finally:
        os.close(fd)
    assert process.returncode == 0, process.stderr.decode()
    run_dir = project.output / "exp" / "exp.0"
    expected = (run_dir / "expected.sha256").read_text()
    log = (run_dir / "outputs.log").read_bytes()
    assert hashlib.sha256(log).hexdigest() == expected
    assert copied.startswith(prefix)
    assert hashlib.sha256(copied[len(prefix) :]).hexdigest() == expected

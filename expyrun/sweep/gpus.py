"""The GPUs a sweep hands out: `--gpus 0,1,2` or `--gpus auto` (what `nvidia-smi -L` lists)."""

from __future__ import annotations

import re

from expyrun import _command, console
from expyrun.errors import ToolError, UsageError

NVIDIA_SMI_TIMEOUT_SECONDS = 20.0
_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def gpu_list(gpus: str | None, per_run: int) -> list[str]:
    """The GPU ids to hand out (empty: none, members get no CUDA_VISIBLE_DEVICES).

    Raises:
        UsageError: a malformed or repeated id, or fewer GPUs than `per_run`.
    """
    if gpus is None:
        return []
    if gpus.strip() == "auto":
        found = detected_gpus()
        if not found:
            console.warning("--gpus auto: no GPU found (nvidia-smi -L): members get no GPU")
            return []
    else:
        found = [part.strip() for part in gpus.split(",")]
        if any(not part or not part.isprintable() or " " in part for part in found):
            raise UsageError(f"--gpus: expected ids like 0,1 or auto, got {gpus!r}")
        if len(set(found)) != len(found):
            raise UsageError(f"--gpus: an id is listed twice in {gpus!r}")
    if per_run > len(found):
        raise UsageError(
            f"--gpus-per-run {per_run}: only {len(found)} GPUs to hand out ({','.join(found)})"
        )
    return found


def detected_gpus() -> list[str]:
    """The indexes `nvidia-smi -L` lists; none when it is missing or fails."""
    try:
        done = _command.run(["nvidia-smi", "-L"], timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=False)
    except ToolError:
        return []
    if done.code != 0:
        return []
    return _GPU_LINE.findall(done.stdout)

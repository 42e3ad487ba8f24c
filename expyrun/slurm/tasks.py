"""The task of a multi-task Slurm job step (`srun --ntasks=N expyrun ...`), from srun's variables.

srun sets, for each task of a step (srun(1), OUTPUT ENVIRONMENT VARIABLES): SLURM_STEP_ID,
SLURM_STEP_NUM_TASKS, SLURM_PROCID (the rank), SLURM_LOCALID (the rank on its node),
SLURM_NODEID, SLURM_STEP_TASKS_PER_NODE (`2(x3),1`), SLURM_STEP_NODELIST. A batch script's
own step sets none of SLURM_STEP_ID and SLURM_STEP_NUM_TASKS: `expyrun` run directly in a
batch script with `--ntasks=4` is one task, not four.

MASTER_ADDR is the first host of the step's node list (where task 0 runs: srun places ranks
in node order), expanded by `scontrol show hostnames`. MASTER_PORT is derived from the job id,
`MASTER_PORT_BASE + job_id % MASTER_PORT_SPAN` (10000-29999: below Linux's ephemeral ports,
32768 and up, so no outgoing connection holds it), the same in every task without talking;
an exported MASTER_ADDR or MASTER_PORT wins (the rank variables never do: run/tasks.py
`Task.environment`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from expyrun.errors import SlurmError

if TYPE_CHECKING:
    from expyrun.run.tasks import Task

# This module is imported by every launch, before the worker starts: what it needs from the
# rest of expyrun is imported when a job step of several tasks is found.
STEP_ID_VARIABLE = "SLURM_STEP_ID"
STEP_TASKS_VARIABLE = "SLURM_STEP_NUM_TASKS"
PROC_ID_VARIABLE = "SLURM_PROCID"
LOCAL_ID_VARIABLE = "SLURM_LOCALID"
NODE_ID_VARIABLE = "SLURM_NODEID"
TASKS_PER_NODE_VARIABLE = "SLURM_STEP_TASKS_PER_NODE"
STEP_NODELIST_VARIABLE = "SLURM_STEP_NODELIST"
JOB_NODELIST_VARIABLE = "SLURM_JOB_NODELIST"
MASTER_PORT_BASE = 10000
MASTER_PORT_SPAN = 20000
# Compiled when first used (re caches it): only a job step needs it.
_TASKS_PER_NODE = r"^(\d+)(?:\(x(\d+)\))?$"


def several_tasks_here(environ: Mapping[str, str]) -> bool:
    """Whether this process is a task of a Slurm job step of several tasks (cheap to ask)."""
    world = _integer(environ, STEP_TASKS_VARIABLE)
    return bool(environ.get(STEP_ID_VARIABLE)) and world is not None and world > 1


def step_task(environ: Mapping[str, str]) -> Task | None:
    """This process's task in a job step of several tasks; None outside one (or alone in it).

    Raises SlurmError when the step's variables are inconsistent, or its node list cannot be
    expanded (scontrol fails).
    """
    from expyrun.run.tasks import MASTER_ADDR_VARIABLE, Task
    from expyrun.slurm.job import JOB_ID_VARIABLE, restart_count

    job_id = environ.get(JOB_ID_VARIABLE)
    step_id = environ.get(STEP_ID_VARIABLE)
    world = _integer(environ, STEP_TASKS_VARIABLE)
    if not job_id or not step_id or world is None or world < 2 or not several_tasks_here(environ):
        return None
    rank = _integer(environ, PROC_ID_VARIABLE)
    if rank is None or not 0 <= rank < world:
        found = environ.get(PROC_ID_VARIABLE)
        raise SlurmError(f"{PROC_ID_VARIABLE} is not a rank below {world}: {found!r}")
    local_rank = _integer(environ, LOCAL_ID_VARIABLE) or 0
    node = _integer(environ, NODE_ID_VARIABLE) or 0
    per_node = tasks_per_node(environ.get(TASKS_PER_NODE_VARIABLE) or str(world))
    local_world = per_node[node] if node < len(per_node) else world
    group = f"slurm-{job_id}.{step_id}"
    restarts = restart_count(environ)
    if restarts:
        group += f".r{restarts}"
    return Task(
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        local_world_size=local_world,
        # Asked only when needed: an exported MASTER_ADDR wins anyway.
        master_addr=environ.get(MASTER_ADDR_VARIABLE) or _first_host(environ),
        master_port=master_port(job_id),
        group=group,
    )


def master_port(job_id: str) -> int:
    """The port task 0 listens on, derived from the job id (the same in every task)."""
    digits = "".join(char for char in job_id if char.isdigit()) or "0"
    return MASTER_PORT_BASE + int(digits) % MASTER_PORT_SPAN


def tasks_per_node(text: str) -> list[int]:
    """`2(x3),1` -> [2, 2, 2, 1] (SLURM_STEP_TASKS_PER_NODE's format)."""
    counts: list[int] = []
    for part in text.split(","):
        match = re.match(_TASKS_PER_NODE, part.strip())
        if match is None:
            raise SlurmError(f"cannot read {TASKS_PER_NODE_VARIABLE}={text!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def _first_host(environ: Mapping[str, str]) -> str:
    nodelist = environ.get(STEP_NODELIST_VARIABLE) or environ.get(JOB_NODELIST_VARIABLE) or ""
    if not nodelist:
        raise SlurmError(f"no {STEP_NODELIST_VARIABLE} in the job step's environment")
    from expyrun.slurm import commands

    hosts = commands.call(["scontrol", "show", "hostnames", nodelist]).split()
    if not hosts:
        raise SlurmError(f"`scontrol show hostnames {nodelist}` printed no host")
    return hosts[0]


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    try:
        return int(environ[name])
    except (KeyError, ValueError):
        return None

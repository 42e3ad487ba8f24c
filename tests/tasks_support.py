"""What the multi-task tests share: a rendezvous entry, and the simulated tasks of a job step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import read_json

# The tasks meet over TCP as torch.distributed's env:// rendezvous would: task 0 listens on
# MASTER_ADDR:MASTER_PORT, the others connect and send their rank, task 0 answers with every
# rank it got. Each prints what it saw. `fail_rank` fails that task before the meeting.
RENDEZVOUS_ENTRY = """
import socket
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
local = f"{os.environ['LOCAL_RANK']}/{os.environ['LOCAL_WORLD_SIZE']}"
print(f"rank {rank}/{world} local {local} master {addr}:{port}", flush=True)
if config.get("fail_rank") == rank:
    raise ValueError(f"rank {rank} fails on purpose")
if config.get("wait"):
    open(f"ready.{rank}", "w").close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(3)
deadline = time.monotonic() + 60
if rank == 0:
    server = socket.create_server((addr, port))
    server.settimeout(60)
    peers = [server.accept()[0] for _ in range(world - 1)]
    ranks = sorted([0] + [int(peer.makefile().readline()) for peer in peers])
    for peer in peers:
        peer.sendall(f"{ranks}\\n".encode())
        peer.close()
else:
    while True:
        try:
            connection = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # task 0 is not listening yet: try again
    connection.settimeout(60)
    connection.sendall(f"{rank}\\n".encode())
    ranks = connection.makefile().readline().strip()
print(f"rank {rank} met ranks {ranks}", flush=True)
"""


def met_line(rank: int, world: int) -> str:
    """The line task `rank` prints once it met every task."""
    return f"rank {rank} met ranks {list(range(world))}"


def task_log(run_dir: Path, rank: int) -> str:
    return (run_dir / ("outputs.log" if rank == 0 else f"outputs.task{rank}.log")).read_text()


def tasks_of(run_dir: Path) -> list[dict[str, Any]]:
    """run.json's `tasks`, checked to be in rank order."""
    tasks = read_json(run_dir / "run.json")["tasks"]
    assert [task["rank"] for task in tasks] == list(range(len(tasks))), tasks
    return tasks


def step_env(rank: int, world: int, job_id: str = "7001", **extra: str) -> dict[str, str]:
    """The variables srun gives task `rank` of step 0 of a job with `world` tasks on one node.

    MASTER_ADDR is given (no scontrol is asked to expand the simulated node list).
    """
    return {
        "SLURM_JOB_ID": job_id,
        "SLURM_STEP_ID": "0",
        "SLURM_STEP_NUM_TASKS": str(world),
        "SLURM_NTASKS": str(world),
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NODEID": "0",
        "SLURM_STEP_TASKS_PER_NODE": str(world),
        "SLURM_STEP_NODELIST": "simulated",
        "MASTER_ADDR": "127.0.0.1",
        **extra,
    }

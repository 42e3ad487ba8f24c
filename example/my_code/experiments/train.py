"""Train a linear model by stochastic gradient descent, the way a real experiment would.

What it shows about expyrun:
- the entry point is `main(name, config)`; it runs in the run folder, so files it writes
  (checkpoint.json, model.json) land next to config.yml and outputs.log;
- SIGINT, SIGTERM and SIGUSR1 (Ctrl-C, `expyrun stop`, Slurm's warning signal or time limit)
  make it save a checkpoint at the end of the epoch and exit cleanly (code 0, no traceback);
  when it finds checkpoint.json in its folder (a requeued Slurm job runs again in the same run
  folder) it resumes from there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

from my_code.data import make_dataset, mean_squared_error

CHECKPOINT = "checkpoint.json"
stop_requested = False


def _request_stop(signum, frame):
    global stop_requested
    stop_requested = True
    print(f"received {signal.Signals(signum).name}: saving a checkpoint", flush=True)


def main(name: str, config: dict) -> None:
    # SIGINT too: Python's default turns Ctrl-C into a KeyboardInterrupt traceback mid-epoch.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, _request_stop)
    data, model, training = config["data"], config["model"], config["training"]
    train, test = make_dataset(
        data["n_samples"], data["slope"], data["intercept"], data["noise"], data["seed"]
    )
    state = {"epoch": 0, "weights": [0.0, 0.0]}
    if os.path.exists(CHECKPOINT):
        with open(CHECKPOINT) as f:
            state = json.load(f)
        attempt = os.environ.get("EXPYRUN_ATTEMPT", "1")
        print(f"resuming from epoch {state['epoch']} (attempt {attempt})")
    print(f"{name}: {model['name']} on {len(train)} points, lr={training['lr']}")
    rng = random.Random(training["seed"])
    w, b = state["weights"]
    for epoch in range(state["epoch"], training["epochs"]):
        rng.shuffle(train)
        for x, y in train:
            error = w * x + b - y
            w -= training["lr"] * error * x
            b -= training["lr"] * error
        state = {"epoch": epoch + 1, "weights": [w, b]}
        loss = mean_squared_error([w, b], train)
        print(f"epoch {epoch + 1:3d}  train mse {loss:.5f}")
        time.sleep(training["seconds_per_epoch"])
        if stop_requested:
            with open(CHECKPOINT, "w") as f:
                json.dump(state, f)
            print(f"checkpoint saved at epoch {epoch + 1}; exiting")
            raise SystemExit(0)
    result = {"weights": [w, b], "test_mse": mean_squared_error([w, b], test)}
    with open("model.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"test mse {result['test_mse']:.5f}; model saved to {os.path.abspath('model.json')}")

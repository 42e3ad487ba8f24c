#!/bin/bash
# Run one expyrun experiment on several GPUs (data-parallel: one task per GPU), as one run.
# Copy this file, adapt the lines.
#
#   sbatch sbatch-expyrun-multigpu.sh configs/experiments/train.yml --model.size 50
#
# The arguments are expyrun's: the config, then overrides. See README.md here.
#SBATCH --job-name=expyrun-multigpu
#SBATCH --output=%x-%j.out          # every task's output; each also in its own log file
#SBATCH --nodes=1                   # more nodes: MASTER_ADDR is the first node's
#SBATCH --ntasks-per-node=4         # one task per GPU
#SBATCH --gpus-per-task=1           # Slurm sets CUDA_VISIBLE_DEVICES for each task
#SBATCH --cpus-per-task=8           # data loading workers, per task
#SBATCH --mem-per-gpu=32G
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@300         # USR1 to srun 5-5.5 min before the time limit; srun
                                    # forwards it to every task's expyrun, then to the entry

# Threads of numpy/torch CPU ops: the CPUs Slurm gave each task, not every CPU of the node.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
# The CPUs of each task of the step (srun of Slurm 22.05 to 23.02 does not take them from the job).
export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}

# One run folder for all the tasks: task 0 snapshots it, every task's worker gets RANK,
# LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torch.distributed's
# env://). --kill-on-bad-exit: a task that fails stops the others (else they wait for it).
# exec: srun becomes the batch task, so Slurm's signals reach it and it forwards them.
exec srun --kill-on-bad-exit=1 expyrun "$@"

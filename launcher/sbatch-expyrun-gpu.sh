#!/bin/bash
# Run one expyrun experiment as a Slurm batch job on one GPU. Copy this file, adapt the lines.
#
#   sbatch sbatch-expyrun-gpu.sh configs/experiments/train.yml --model.size 50
#
# The arguments are expyrun's: the config, then overrides. See README.md here.
#SBATCH --job-name=expyrun-gpu
#SBATCH --output=%x-%j.out          # for an array (--array=0-3): %x-%A_%a.out
#SBATCH --open-mode=append          # a requeued job appends to its output file
#SBATCH --time=12:00:00
#SBATCH --gres=gpu:1                # one GPU; Slurm sets CUDA_VISIBLE_DEVICES
#SBATCH --cpus-per-task=8           # data loading workers
#SBATCH --mem=32G
#SBATCH --signal=B:USR1@300         # USR1 to expyrun 5-5.5 min before the time limit
#SBATCH --requeue                   # preempted or node failure: requeued, the run resumes

# Threads of numpy/torch CPU ops: the CPUs Slurm gave, not every CPU of the node.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

# exec: expyrun becomes the batch task, so Slurm's signals reach it; the entry point must
# handle SIGUSR1, or USR1 ends the run (see sbatch-expyrun.sh).
exec expyrun "$@"

#!/bin/bash
# Run one expyrun experiment as a Slurm batch job (CPU). Copy this file, adapt the #SBATCH lines.
#
#   sbatch sbatch-expyrun.sh configs/experiments/sgd.yml --training.lr 0.1
#
# The arguments are expyrun's: the config, then overrides. sbatch options given on its command
# line win over these lines (sbatch --time=30 sbatch-expyrun.sh cfg.yml). See README.md here.
#SBATCH --job-name=expyrun
#SBATCH --output=%x-%j.out          # for an array (--array=0-3): %x-%A_%a.out
#SBATCH --open-mode=append          # a requeued job appends to its output file
#SBATCH --time=01:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --signal=B:USR1@120         # USR1 to expyrun 120-150 s before the time limit
#SBATCH --requeue                   # preempted or node failure: requeued, the run resumes

# exec: expyrun becomes the batch task, so Slurm's signals (USR1, the time limit's SIGTERM)
# reach it, and it forwards them to the experiment. The entry point must handle SIGUSR1
# (signal.signal(signal.SIGUSR1, ...)): by default USR1 ends the run. Without a handler,
# delete the --signal line: the time limit's SIGTERM still comes, KillWait before SIGKILL.
exec expyrun "$@"

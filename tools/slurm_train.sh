#!/usr/bin/env bash
# Training on a slurm cluster, one task per GPU, with mmdet's / mmseg's arguments:
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]
# srun is exec'd, so it is the process slurm signals. slurm's SIGTERM (scancel, preemption,
# and SIGNAL=TERM@120 seconds before the time limit) goes to every task, and each
# train.py's PreemptionHook writes a resumable latest.pth and exits 143. To be requeued and
# continue where it stopped, submit with `sbatch --requeue` and pass `--resume`: with an
# empty work dir it starts from scratch, later it resumes from the newest checkpoint.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SIGNAL=${SIGNAL:-TERM@120}
SRUN_ARGS=${SRUN_ARGS:-""}
TOOLS=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}

# SRUN_ARGS is split into words on purpose (e.g. SRUN_ARGS="--qos=high --time=24:00:00").
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    --signal="$SIGNAL" \
    $SRUN_ARGS \
    "$PYTHON" -u "$TOOLS/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"

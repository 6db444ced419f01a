#!/usr/bin/env bash
# Retrain the shipped volume model (models/checkpoints/volume_unet14_walker.safetensors): the
# gaze-prompted network that refines the viewer's ROI walker (--volume-prior native), trained on
# SynthSeg images of the two label volumes inside the pyvista wheel (frog, channels), validated on
# the MNI152 T1 inside the nilearn wheel. The TotalSegmentator CT (shared data) is never read, so it
# stays the test volume of bench/volume_interactive.py. docs/volumes.md ("The network on the viewer's
# walker") has the run this reproduces, how it was chosen, and what it scores.
# One torch thread and fixed steps (no time limit): a rerun gives the same weights (digest printed).
#
#   make volume-checkpoint             # or: bash scripts/train_volume_checkpoint.sh
#   STEPS=2 VAL_REPEATS=0 OUT=/tmp/smoke.safetensors bash scripts/train_volume_checkpoint.sh   # smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
GAZE3D=${GAZE3D:-.venv/bin/gaze3d}
OUT=${OUT:-models/checkpoints/volume_unet14_walker.safetensors}
STEPS=${STEPS:-1500}
ERROR_ROUNDS=${ERROR_ROUNDS:-1}
VAL_REPEATS=${VAL_REPEATS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$GAZE3D" train --volumes frog,channels --val-volume mni --volume-prior native -o "$work/volume.safetensors" \
    --steps "$STEPS" --batch-size 2 --base-channels 8 --error-rounds "$ERROR_ROUNDS" --threads 1 --seed 0 \
    --val-repeats "$VAL_REPEATS"
# same folder as OUT, then rename: never a half-written checkpoint
cp "$work/volume.safetensors" "$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
echo "wrote $OUT"

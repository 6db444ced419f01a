#!/usr/bin/env bash
# CUDA checks of the sparse backend, for a machine with an NVIDIA GPU and PyTorch
# (run from the repository root; needs no gaze3d install):
#   * tests/test_sparse.py (CPU vs CUDA agreement, CUDA gradcheck in float64, and the rest)
#   * bench/sparse_conv.py --device cuda (SubM 3^3 32->32 fwd+bwd on ~100k voxels)
# Output goes to stdout and, when $OUT is set, to $OUT/gpu_check.log.
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp}/gpu_check.log
PY=${PYTHON:-python3}
# Make `gaze3d.models` importable from a plain checkout (setup.py maps models/ there on install).
if [ ! -e gaze3d/models ]; then ln -s ../models gaze3d/models; CREATED_LINK=1; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  echo "== tests/test_sparse.py"
  $PY -m pytest tests/test_sparse.py -q -p no:cacheprovider -o addopts="" -rs --timeout 300
  echo "== bench/sparse_conv.py --device cuda"
  $PY bench/sparse_conv.py --device cuda --repeats 20 --skip-network
  echo "== bench/sparse_conv.py --device cuda --voxels 1000000"
  $PY bench/sparse_conv.py --device cuda --voxels 1000000 --repeats 10 --skip-network
} 2>&1 | tee "$LOG"
status=$?
[ "${CREATED_LINK:-0}" = 1 ] && rm -f gaze3d/models
exit $status

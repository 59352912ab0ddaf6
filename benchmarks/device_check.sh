#!/usr/bin/env bash
# The GPU checks, as one script for a machine with CUDA (issue 15's "GPU"; README "GPUs").
#   1. tests marked gpu: one batch of each loss trained and classified on CPU and on CUDA, same verdicts;
#   2. benchmarks/bench_engine.py on CUDA: run-steps per second and the fraction of float64 GEMM peak.
# Usage: bash benchmarks/device_check.sh OUTPUT_DIR [RUNS_SCALE]. The project's Python packages must be
# importable (PYTHONPATH or an installed environment).
set -uo pipefail
out=${1:?usage: device_check.sh OUTPUT_DIR [RUNS_SCALE]}
scale=${2:-64}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
timeout 300 python3 -m pytest -m gpu tests/test_device.py -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log"
timeout 300 python3 benchmarks/bench_engine.py --device cuda --runs-scale "$scale" --steps 200 2>&1 \
  | tee "$out/bench_engine_cuda.log"

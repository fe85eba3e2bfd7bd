#!/usr/bin/env bash
# The one prepared GPU check of issue 17 (a few minutes on an H200): bench_generate.py on the 163M shape
# (SmolLM2-135M's configuration) and the Qwen2.5-0.5B / 1.5B shapes at batch 1, 8 and 32, bfloat16, random
# weights built in memory (no hub); then one profile of a step at threshold 0.1 on the 163M shape.
# Run from the repository root:  bash benchmarks/gpu_check.sh [OUT_DIR]   (figures: OUT_DIR/*.json, *.txt)
set -uo pipefail
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
py="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
for shape in smollm2-135m qwen2.5-0.5b qwen2.5-1.5b; do
  echo "== $shape"
  timeout 200 "$py" benchmarks/bench_generate.py --shape "$shape" --device cuda --batches 1,8,32 \
    --tokens 32 --runs 5 --json "$out/bench_$shape.json" 2>&1 | grep -v "^Failed to load" | tee "$out/bench_$shape.txt"
done
echo "== profile"
timeout 90 "$py" benchmarks/profile_step.py --shape smollm2-135m --device cuda --threshold 0.1 --steps 32 --torch \
  2>&1 | grep -v "^Failed to load" | tee "$out/profile_smollm2_0.1.txt"

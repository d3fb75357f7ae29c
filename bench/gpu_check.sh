#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): bt, margin and MORE on Pythia-1.4B and a LoRA Llama-3-8B, random weights
# under their real configs, against TRL's RewardTrainer; tiny configs on the CPU where there is no CUDA.
#   bench/gpu_check.sh [--tiny] [--steps N] [--only pythia-1.4b,llama-3-8b] [--budget-s 450] [--json PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
start=$(date +%s)
"$python" bench/gpu_check.py "$@"
echo "gpu_check.sh: $(( $(date +%s) - start )) s in all"

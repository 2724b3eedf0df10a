#!/usr/bin/env bash
# The one prepared GPU run (H100/H200), well inside an 8-minute limit:
#   1. environment: GPU, versions, imports (installs nothing from the network: wheels from
#      benchmarks/gpu_wheels.sh, carried as .whl/, are installed into /tmp/site if present);
#   2. float16 correctness: fp16 scores close to fp32 on the 30M model, no NaN;
#   3. the full benchmark on cuda (float16), 5 repeats, plus the token-budget sweep; captum's
#      token-by-token default runs in full for occlusion on the short input and is timed on one
#      variant elsewhere (see benchmarks/perturbation.py).
# Writes into $OUT/: log.txt, env.txt, fp16.json, results_gpu.json, RESULTS_gpu.md.
# Python packages imported: torch (CUDA), transformers, tokenizers, safetensors,
# huggingface_hub, captum (+ matplotlib, tqdm), scikit-learn (captum's Lime), numpy,
# pydantic (+ pydantic_core, annotated_types, typing_inspection), pysbd, pyyaml, regex.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ffattr_gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start ))s] $*"; }

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
fi
elapsed "environment"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 - <<'PY'
import captum, pydantic, pysbd, sklearn, torch, transformers, tokenizers
print("python", __import__("sys").version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
      "captum", captum.__version__, "pydantic", pydantic.VERSION, "sklearn", sklearn.__version__)
print("gpu", torch.cuda.get_device_name(0))
import fairforge_attr, benchmarks.run  # noqa: F401 - every import the run needs
PY
} 2>&1 | tee "$OUT/env.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { elapsed "environment check failed"; exit 1; }

elapsed "float16 check"
timeout 75 python3 -m benchmarks.fp16 "$OUT/fp16.json" || elapsed "fp16 check failed or timed out"

elapsed "benchmark"
# --json is rewritten after every case, so a run stopped by the timeout keeps what it did.
timeout 300 python3 -m benchmarks.run --device cuda --repeats 5 --tune \
  --json "$OUT/results_gpu.json" --md "$OUT/RESULTS_gpu.md" || elapsed "benchmark stopped early"
if [ -f "$OUT/results_gpu.json" ] && [ ! -s "$OUT/RESULTS_gpu.md" -o "$OUT/results_gpu.json" -nt "$OUT/RESULTS_gpu.md" ]; then
  python3 -m benchmarks.report "$OUT/results_gpu.json" "$OUT/RESULTS_gpu.md"
fi
elapsed "done"

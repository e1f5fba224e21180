#!/usr/bin/env bash
# Every GPU measurement in one call, within 8 minutes on one GPU:
#   1. every CUDA test (pytest -m cuda, and the tests gated on a GPU by name: cuda / tensorrt),
#   2. the FOMM backends on the GPU (torch fp16, ONNX Runtime CUDA, TensorRT where its execution
#      provider is installed): speed, with parity asserted by the CUDA tests of step 1,
#   3. `emostream bench --device cuda`, whose sessions_curve is the sessions-per-GPU curve.
# Writes JSON under $OUT (default out/gpu_check): gpu_check.json (summary: GPU, steps, exit codes,
# seconds) beside each step's own output. A machine without a CUDA GPU gets one clear line and
# exit 0. Usage: OUT=/path bash scripts/gpu_check.sh [VENV]
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="$VENV/bin/python"
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
SUMMARY="$OUT/gpu_check.json"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: skipped: no CUDA GPU on this machine (nvidia-smi finds none)"
  printf '{"skipped": true, "reason": "no CUDA GPU (nvidia-smi finds none)"}\n' >"$SUMMARY"
  exit 0
fi
GPU="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  TORCH="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)"
  echo "gpu_check: error: a GPU is here ($GPU) but torch $TORCH in $VENV cannot use it (a CPU build?);" \
    "install a CUDA build of torch 2.13.0 and 'emostream[cuda]'" >&2
  printf '{"skipped": false, "error": "torch %s cannot use the GPU", "gpu": "%s"}\n' "$TORCH" "$GPU" >"$SUMMARY"
  exit 3
fi
echo "gpu_check: $GPU"

steps=()
failed=0
run_step() {  # name, timeout seconds, command...
  local name="$1" limit="$2"
  shift 2
  local t0 rc
  t0=$(date +%s.%N)
  echo "gpu_check: $name (at most ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "gpu_check: $name: exit $rc in $secs s (log: $OUT/$name.log)"
  ((rc == 0)) || failed=1
  steps+=("{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $secs}")
}

# pytest ANDs -m and -k, so two runs: the marked tests, then the GPU-gated ones found by name.
run_step cuda_tests 100 sh -c "'$PY' -m pytest -q -rs -p no:cacheprovider tests -m cuda \
  --junitxml='$OUT/cuda_tests_marked.xml'; a=\$?; [ \$a -eq 5 ] && a=0
  '$PY' -m pytest -q -rs -p no:cacheprovider tests -m 'not cuda' -k 'cuda or tensorrt or gpu' \
  --junitxml='$OUT/cuda_tests_named.xml'; b=\$?; [ \$b -eq 5 ] && b=0; exit \$((a | b))"
run_step fomm_backends 120 sh -c "'$PY' benchmarks/bench_fomm.py --device cuda --repeats 20 >'$OUT/bench_fomm_cuda.json'"
run_step bench_cuda 240 "$VENV/bin/emostream" bench --device cuda --json "$OUT/bench_cuda.json" \
  --live-seconds 20 --sessions-seconds 10 --max-sessions 16

{
  printf '{"skipped": false, "gpu": "%s", "failed": %s, "steps": [' "$GPU" "$([[ $failed == 1 ]] && echo true || echo false)"
  (IFS=,; printf '%s' "${steps[*]}")
  printf '], "files": ["cuda_tests_marked.xml", "cuda_tests_named.xml", "bench_fomm_cuda.json", "bench_cuda.json"]}\n'
} >"$SUMMARY"
echo "gpu_check: summary in $SUMMARY"
exit $failed

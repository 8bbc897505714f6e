#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after bench/run_gpu.sh staged .gpu/ here.
#
#   bash bench/gpu_entry.sh [tests|flex|bench|all] [attention_bench.py options, for bench/all]
#
#   tests  .gpu/bin/kg_gpu_tests --all            (template vs reference kernel, every spec)
#          .gpu/bin/kg_gpu_tests --reference-vs-cpu (reference kernel vs CPU double reference)
#   flex   flex_check.py: template kernels vs torch.compile(flex_attention)
#   bench  attention_bench.py: ours vs FlexAttention vs SDPA flash/cuDNN; e.g. `bench --seqs 4096`
#   all    the three in turn (default)
#
# Writes under $OUT (default .gpu/out; at most 8 files come back from the device): tests.log,
# ref_cpu.log, flex.log, flex.json, bench.log, bench.json, summary.txt. Prints the summary last.
# Each step runs under `timeout` (seconds: KG_TIMEOUT_TESTS, KG_TIMEOUT_FLEX, KG_TIMEOUT_BENCH) so
# that a hang still leaves a summary. Exit status: 0 when every step that ran passed (or skipped).
set -uo pipefail
phase=${1:-all}
shift || true
case $phase in
  tests | flex | bench | all) ;;
  *) echo "usage: bash bench/gpu_entry.sh [tests|flex|bench|all] [bench options]" >&2; exit 2 ;;
esac
if [[ ! -x .gpu/bin/kg_gpu_tests ]]; then
  echo "gpu_entry.sh: no .gpu/bin/kg_gpu_tests here ($PWD): run bench/run_gpu.sh first and carry .gpu" >&2
  exit 2
fi
OUT=${OUT:-$PWD/.gpu/out}
mkdir -p "$OUT"

# Drop staged libraries the machine already has (ours would shadow them), then use the rest.
known=$(ldconfig -p)
for f in .gpu/lib/*; do
  [[ -e $f ]] || continue
  if grep -q "$(basename "$f") " <<<"$known"; then
    rm "$f"
  fi
done
export LD_LIBRARY_PATH=$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

summary=$OUT/summary.txt
{
  echo "# KernelGen GPU run ($phase), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv,noheader 2>&1 | sed 's/^/device: /'
  echo "staged libs used: $(ls .gpu/lib 2>/dev/null | tr '\n' ' ')"
} >"$summary"

status=0
# step NAME LOG TIMEOUT COMMAND...: runs, records "NAME: PASS|FAIL|SKIP|TIMEOUT (exit N, S s)".
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local t0=$SECONDS rc verdict
  echo ">> $name: $*" >>"$summary"
  timeout --kill-after=20 "$limit" "$@" >"$log" 2>&1
  rc=$?
  case $rc in
    0) verdict=PASS ;;
    77) verdict=SKIP ;;
    124 | 137) verdict="TIMEOUT after ${limit}s" ;;
    *) verdict=FAIL ;;
  esac
  [[ $rc == 0 || $rc == 77 ]] || status=1
  echo "$name: $verdict (exit $rc, $((SECONDS - t0)) s; log $(basename "$log"))" >>"$summary"
}

if [[ $phase == tests || $phase == all ]]; then
  step "template vs reference" "$OUT/tests.log" "${KG_TIMEOUT_TESTS:-300}" .gpu/bin/kg_gpu_tests --all
  grep -E '^(PASS|FAIL|SKIP)|^  FAIL' "$OUT/tests.log" | head -60 | sed 's/^/  /' >>"$summary"
  step "reference vs cpu" "$OUT/ref_cpu.log" "${KG_TIMEOUT_TESTS:-300}" .gpu/bin/kg_gpu_tests --reference-vs-cpu
  grep -E '^(PASS|FAIL|SKIP)|^  FAIL' "$OUT/ref_cpu.log" | head -40 | sed 's/^/  /' >>"$summary"
fi
if [[ $phase == flex || $phase == all ]]; then
  step "flex_check" "$OUT/flex.log" "${KG_TIMEOUT_FLEX:-540}" python3 .gpu/scripts/flex_check.py \
    --lib .gpu/kernels/libkg_spec_kernels.so --mods .gpu/mods --json "$OUT/flex.json"
  grep -E '^(PASS|FAIL|SKIP|ctypes)|^  FAIL' "$OUT/flex.log" | head -40 | sed 's/^/  /' >>"$summary"
fi
if [[ $phase == bench || $phase == all ]]; then
  step "attention_bench" "$OUT/bench.log" "${KG_TIMEOUT_BENCH:-540}" python3 .gpu/scripts/attention_bench.py \
    --lib .gpu/kernels/libkg_bench_kernels.so --mods .gpu/bench_mods --out "$OUT/bench.json" "$@"
  grep -E '^\||ERROR|WRONG|SKIP' "$OUT/bench.log" | tail -40 >>"$summary"
fi

echo "== summary =="
cat "$summary"
exit $status

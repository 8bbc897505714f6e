#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after bench/run_gpu.sh staged .gpu/ here.
#
#   bash bench/gpu_entry.sh [tests|flex|bench|verify|verify-repeat|fuzz|all] [attention_bench.py options]
#
#   tests  .gpu/bin/kg_gpu_tests --all            (template vs reference kernel, every spec)
#          .gpu/bin/kg_gpu_tests_sm80 --all       (the same for the mma.sync family)
#          .gpu/bin/kg_gpu_tests --reference-vs-cpu (reference kernel vs CPU double reference)
#          tests/cli/cache_verify_gpu_test.sh      (`kernelgen cache verify`: records made with the GPU
#                                                  hidden, then verified, one of them tampered; its
#                                                  log stays in .gpu/cache_verify.log, its lines go
#                                                  into the summary)
#   flex   flex_check.py: template kernels vs torch.compile(flex_attention)
#   bench  attention_bench.py: ours vs FlexAttention vs SDPA flash/cuDNN; e.g. `bench --seqs 4096`
#   verify the verifier (docs/verifier.md): the adversarial suite (tests/verify/adversarial/*.cu,
#          each must get the finding its header names; good_simple.cu must pass) and
#          bench/verify_bench.sh (nvcc time and verification time per spec). ~3-4 min.
#   verify-repeat  no false rejects: every template kernel of specs/ (or $KG_VERIFY_SPECS) passes
#          $KG_VERIFY_REPEAT (default 100) consecutive `kernelgen verify --template` runs;
#          ~1-2 s each: 100 x 14 specs does not fit one 10-minute call, so split KG_VERIFY_SPECS.
#   fuzz   .gpu/bin/kg_gpu_tests --fuzz-dir .gpu/fuzz: the differential fuzzer's random specs
#          (staged by run_gpu.sh), CPU interpreter vs reference kernel vs template kernel
#          (docs/verifier.md, "Differential fuzzer"); seed KG_FUZZ_SEED (default: random, printed)
#   loop   the closed loop against the scripted model (tests/llm/kg_fake_llm): the end-to-end
#          test through kernelgen_add_attention() (tests/llm/loop_gpu_test.sh) and the per-round
#          throughput benchmark (bench/loop_bench.sh; KG_LOOP_ROUNDS, KG_LOOP_DELAY). ~5 min.
#   all    tests, flex, bench in turn (default)
#
# Writes under $OUT (default .gpu/out; at most 8 files come back from the device): tests.log,
# tests_sm80.log, ref_cpu.log, flex.log, flex.json, bench.log, bench.json, summary.txt (verify: verify.log,
# verify_bench.tsv, verify_repeat.log; fuzz: fuzz.log). Prints the summary last.
# Each step runs under `timeout` (seconds: KG_TIMEOUT_TESTS, KG_TIMEOUT_FLEX, KG_TIMEOUT_BENCH, KG_TIMEOUT_FUZZ) so
# that a hang still leaves a summary. Exit status: 0 when every step that ran passed (or skipped).
set -uo pipefail
phase=${1:-all}
shift || true
case $phase in
  tests | flex | bench | verify | verify-repeat | fuzz | loop | all) ;;
  *) echo "usage: bash bench/gpu_entry.sh [tests|flex|bench|verify|verify-repeat|fuzz|loop|all] [bench options]" >&2; exit 2 ;;
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
  step "template vs reference, mma.sync family" "$OUT/tests_sm80.log" "${KG_TIMEOUT_TESTS:-300}" \
    .gpu/bin/kg_gpu_tests_sm80 --all
  grep -E '^(PASS|FAIL|SKIP)|^  FAIL' "$OUT/tests_sm80.log" | tail -3 | sed 's/^/  /' >>"$summary"
  step "reference vs cpu" "$OUT/ref_cpu.log" "${KG_TIMEOUT_TESTS:-300}" .gpu/bin/kg_gpu_tests --reference-vs-cpu
  grep -E '^(PASS|FAIL|SKIP)|^  FAIL' "$OUT/ref_cpu.log" | head -40 | sed 's/^/  /' >>"$summary"
  # Its log is not under $OUT (the files that come back are counted): the summary gets its lines.
  step "cache verify" .gpu/cache_verify.log "${KG_TIMEOUT_TESTS:-300}" \
    env PATH="$PWD/.gpu/bin:$PATH" KERNELGEN_NVCC="${KERNELGEN_NVCC:-/usr/local/cuda/bin/nvcc}" \
    bash tests/cli/cache_verify_gpu_test.sh .gpu/bin/kernelgen
  if grep -q '^cache_verify_gpu_test: .* 0 failed' .gpu/cache_verify.log; then
    grep -E '^(SKIP|report|cache verify|cache_verify_gpu_test)' .gpu/cache_verify.log | sed 's/^/  /' >>"$summary"
  else
    tail -40 .gpu/cache_verify.log | sed 's/^/  /' >>"$summary"
  fi
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

if [[ $phase == fuzz ]]; then
  if [[ ! -f .gpu/fuzz/manifest.txt ]]; then
    echo "gpu_entry.sh: no .gpu/fuzz/manifest.txt: stage it with bench/run_gpu.sh (KG_GPU_FUZZ_COUNT > 0)" >&2
    exit 2
  fi
  step "differential fuzzer" "$OUT/fuzz.log" "${KG_TIMEOUT_FUZZ:-540}" .gpu/bin/kg_gpu_tests --fuzz-dir .gpu/fuzz \
    ${KG_FUZZ_SEED:+--seed "$KG_FUZZ_SEED"}
  grep -E '^(PASS|FAIL|SKIP|fuzz directory)|^  FAIL' "$OUT/fuzz.log" | head -60 | sed 's/^/  /' >>"$summary"
fi

if [[ $phase == loop ]]; then
  export KERNELGEN_NVCC=${KERNELGEN_NVCC:-/usr/local/cuda/bin/nvcc}
  export PATH=$(dirname "$KERNELGEN_NVCC"):$PATH
  step "loop end to end" "$OUT/loop_e2e.log" "${KG_TIMEOUT_LOOP:-420}" \
    bash tests/llm/loop_gpu_test.sh .gpu/bin/kernelgen .gpu/bin/kg_fake_llm .
  grep -E '^(FAIL|best|faster|slower|wrong|broken|none|speedup|round|build|loop_gpu_test)' "$OUT/loop_e2e.log" |
    sed 's/^/  /' >>"$summary"
  step "loop throughput" "$OUT/loop_bench.log" "${KG_TIMEOUT_LOOP_BENCH:-420}" \
    bash bench/loop_bench.sh .gpu/bin/kernelgen .gpu/bin/kg_fake_llm . "${KG_LOOP_ROUNDS:-3}" "${KG_LOOP_DELAY:-0}" \
    "$OUT/loop_bench.tsv"
  tail -12 "$OUT/loop_bench.log" | sed 's/^/  /' >>"$summary"
fi

if [[ $phase == verify || $phase == verify-repeat ]]; then
  # The verifier compiles candidates with the device's nvcc and runs kg_verify_runner beside kernelgen.
  export KERNELGEN_RUNNER=$PWD/.gpu/bin/kg_verify_runner
  export KERNELGEN_NVCC=${KERNELGEN_NVCC:-/usr/local/cuda/bin/nvcc}
  export KERNELGEN_VERIFY_DIR=${KERNELGEN_VERIFY_DIR:-$(mktemp -d /tmp/kg-verify.XXXXXX)}
  export KERNELGEN_CACHE_DIR=${KERNELGEN_CACHE_DIR:-$(mktemp -d /tmp/kg-cache.XXXXXX)}
  echo "verifier: runner $KERNELGEN_RUNNER, nvcc $KERNELGEN_NVCC ($("$KERNELGEN_NVCC" --version | tail -1))" >>"$summary"
fi
if [[ $phase == verify ]]; then
  vlog=$OUT/verify.log
  : >"$vlog"
  t0=$SECONDS ok=0 bad=0
  for k in tests/verify/adversarial/*.cu; do
    expect=$(sed -n 's|^// expect: *\([a-z_|]*\).*|\1|p' "$k")
    stage=$(sed -n 's|^// stage: *\([a-z_-]*\).*|\1|p' "$k")
    echo "== $(basename "$k"): expect $expect [$stage]" >>"$vlog"
    timeout --kill-after=10 120 .gpu/bin/kg_verify_expect --spec specs/causal.yaml --kernel "$k" \
      --expect "$expect" --stage "${stage:--}" --timeout 30 >>"$vlog" 2>&1
    rc=$?
    if [[ $rc == 0 ]]; then ok=$((ok + 1)); else bad=$((bad + 1)); status=1; fi
    echo "  $(basename "$k" .cu): expect $expect -> $(tail -1 "$vlog") (exit $rc)" >>"$summary"
    # The run-time defences alone: the same kernel with the static checks skipped.
    runtime=$(sed -n 's|^// expect-runtime: *\([a-z_|]*\).*|\1|p' "$k")
    if [[ -n $runtime ]]; then
      rstage=$(sed -n 's|^// expect-runtime: *[a-z_|]* *\([a-z_]*\).*|\1|p' "$k")
      echo "== $(basename "$k") (static checks skipped): expect $runtime [$rstage]" >>"$vlog"
      timeout --kill-after=10 120 .gpu/bin/kg_verify_expect --spec specs/causal.yaml --kernel "$k" \
        --expect "$runtime" --stage "${rstage:--}" --timeout 60 --skip-source-checks >>"$vlog" 2>&1
      rc=$?
      if [[ $rc == 0 ]]; then ok=$((ok + 1)); else bad=$((bad + 1)); status=1; fi
      echo "  $(basename "$k" .cu) [runtime]: expect $runtime -> $(tail -1 "$vlog") (exit $rc)" >>"$summary"
    fi
  done
  echo "adversarial suite: $ok as expected, $bad not ($((SECONDS - t0)) s; log verify.log)" >>"$summary"
  step "verify_bench" "$OUT/verify_bench.log" "${KG_TIMEOUT_VERIFY_BENCH:-300}" \
    bash bench/verify_bench.sh .gpu/bin/kernelgen "$OUT/verify_bench.tsv"
  tail -20 "$OUT/verify_bench.log" >>"$summary"
fi
if [[ $phase == verify-repeat ]]; then
  rlog=$OUT/verify_repeat.log
  : >"$rlog"
  for spec in ${KG_VERIFY_SPECS:-specs/*.yaml}; do
    t0=$SECONDS
    timeout --kill-after=10 "${KG_TIMEOUT_REPEAT:-540}" .gpu/bin/kernelgen verify --spec "$spec" --template \
      --repeat "${KG_VERIFY_REPEAT:-100}" >>"$rlog" 2>&1
    rc=$?
    [[ $rc == 0 ]] || status=1
    echo "no-false-reject $(basename "$spec" .yaml): exit $rc, $((SECONDS - t0)) s: $(grep -c ': pass (' "$rlog") passes so far" >>"$summary"
    grep -E 'consecutive verifications passed|finding' "$rlog" | tail -3 | sed 's/^/    /' >>"$summary"
  done
fi

echo "== summary =="
cat "$summary"
exit $status

#!/usr/bin/env bash
# `kernelgen cache verify` on a real GPU (docs/sharing.md, "Verifying records made without a GPU"):
# records are made with the GPU hidden from the verifier (CUDA_VISIBLE_DEVICES=, so `emit` caches
# them unverified, as on a machine without one), then verified with it: a good kernel becomes
# `verified` with a report; a kernel whose source was replaced (consistently re-digested, so only
# the verifier can tell) is rejected and its record removed, and the next emit generates it again,
# verified.
#   bash tests/cli/cache_verify_gpu_test.sh <kernelgen>
# Runs from any directory; the specs and tests/cli/cache_edit.py are found beside this script.
# Needs a CUDA GPU (exits 77 without one), kg_verify_runner beside kernelgen (or KERNELGEN_RUNNER)
# and nvcc (KERNELGEN_NVCC, else on PATH, else /usr/local/cuda/bin/nvcc). The tampered source
# needs python3, mdb_dump / mdb_load and libxxhash; without them that part is skipped (said).
set -uo pipefail
kg=$(readlink -f "$1")
src=$(readlink -f "$(dirname "${BASH_SOURCE[0]}")/../..")
[[ -e /dev/nvidiactl ]] || { echo "no GPU here: skipped"; exit 77; }
work=$(mktemp -d)
trap '[[ -n ${KG_KEEP:-} ]] && echo "kept $work" || rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset KERNELGEN_LOG KERNELGEN_MODE KERNELGEN_REMOTE KERNELGEN_PREBUILT KERNELGEN_VERIFY_DIR
export KERNELGEN_CONFIG=$work/no-such.conf KERNELGEN_CACHE_DIR=$work/cache KERNELGEN_NO_DAEMON=1
export KERNELGEN_NVCC=${KERNELGEN_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
run() {  # run EXPECTED_EXIT CMD...: stdout/stderr in $out/$err; another exit code is a failure
  local want=$1
  shift
  "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  out=$(cat "$work/stdout")
  err=$(cat "$work/stderr")
  if [[ $rc != "$want" ]]; then
    echo "FAIL: '$*' exited $rc, expected $want; stdout: $out; stderr: $err" >&2
    failed=$((failed + 1))
    return 1
  fi
  passed=$((passed + 1))
}
key_of() {
  "$kg" spec check "$1" --json | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['key'])"
}
state_of() { "$kg" cache ls | awk -v k="$1" '$1 == k {print $5}'; }

good=$src/specs/causal_d64.yaml
bad=$src/specs/causal.yaml
good_key=$(key_of "$good")
bad_key=$(key_of "$bad")

# ---- made where the verifier sees no GPU ---------------------------------------------------
t0=$SECONDS
for s in "$good" "$bad"; do
  CUDA_VISIBLE_DEVICES= run 0 "$kg" emit --spec "$s"
done
check "emit with the GPU hidden caches unverified (good)" test "$(state_of "$good_key")" = unverified
check "emit with the GPU hidden caches unverified (bad)" test "$(state_of "$bad_key")" = unverified
CUDA_VISIBLE_DEVICES= run 77 "$kg" cache verify
check "GPU hidden: cache verify says a GPU is needed" contains "$err" "cache verify needs a CUDA GPU"
check "GPU hidden: both kernels wait" contains "$err" "2 kernels are waiting to be verified:"
check "GPU hidden: nothing changed" test "$(state_of "$good_key")" = unverified

# ---- a source replaced behind the cache's back, re-digested consistently ---------------------
tampered=0
if command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null &&
  python3 -c 'import ctypes; ctypes.CDLL("libxxhash.so.0")' 2>/dev/null; then
  edit="python3 $src/tests/cli/cache_edit.py"
  # The diagonal masked out: compiles, runs, and gives wrong numbers on every row.
  "$kg" cache show "$bad_key" --source | sed 's/^  return (q_idx >= kv_idx);$/  return (q_idx > kv_idx);/' >"$work/wrong.cu"
  if "$kg" cache show "$bad_key" --source | cmp -s - "$work/wrong.cu"; then
    echo "FAIL: the causal template's mask line changed shape; cannot make the wrong kernel" >&2
    failed=$((failed + 1))
  else
    wrong=$($edit "$KERNELGEN_CACHE_DIR" blob "$work/wrong.cu") &&
      $edit "$KERNELGEN_CACHE_DIR" record "$bad_key" source_digest="$wrong" && tampered=1
    check "the wrong source is in the record" test "$tampered" = 1
  fi
else
  echo "SKIP: tampered source (needs python3, mdb_dump, mdb_load and libxxhash here)"
fi

# ---- verified with the GPU -----------------------------------------------------------------
t1=$SECONDS
if [[ $tampered == 1 ]]; then
  run 1 "$kg" cache verify
  check "the summary" contains "$out" "1 verified, 1 failed, 0 skipped"
  check "the tampered kernel is rejected with findings" contains "$out" "verdict: rejected"
  check "its record is removed" test -z "$(state_of "$bad_key")"
  check "the removal is said" contains "$err" "its record is removed from the local cache"
else
  run 0 "$kg" cache verify
  check "the summary" contains "$out" "2 verified, 0 failed, 0 skipped"
fi
echo "cache verify on the GPU: $((SECONDS - t1)) s"
check "progress lines" contains "$err" "kernelgen: verifying 1 of 2: "
check "the good kernel is verified" test "$(state_of "$good_key")" = verified
"$kg" cache show "$good_key" --report >"$work/report.json" 2>&1
check "its report is stored" python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['verdict'] == 'pass', r['verdict']
assert r['device']['arch'].startswith('sm_'), r['device']
print('report: %s on %s (%s), %.3f ms' % (r['verdict'], r['device']['name'], r['device']['arch'], r['timing'].get('median_ms', 0)))
" "$work/report.json"

# ---- the rejected kernel is generated again, verified, by the next emit ----------------------
run 0 "$kg" emit --spec "$bad"
check "the next emit caches the kernel again, verified on the GPU" test "$(state_of "$bad_key")" = verified
run 0 "$kg" cache verify
check "then nothing is left to verify" contains "$out" "nothing to verify: every kernel in $KERNELGEN_CACHE_DIR is verified (2)"

echo "cache_verify_gpu_test: $passed passed, $failed failed ($((SECONDS - t0)) s)"
[[ $failed == 0 ]]

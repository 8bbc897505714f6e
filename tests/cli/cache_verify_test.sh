#!/usr/bin/env bash
# `kernelgen cache verify` through the real binary on real LMDB caches (docs/sharing.md,
# "Verifying records made without a GPU"). Records are made by `kernelgen emit --no-verify`, as on
# a machine without a GPU, and damaged with tests/cli/cache_edit.py (mdb_dump / mdb_load).
#   tests/cli/cache_verify_test.sh <kernelgen> <source-dir> [cpu] [runner]
# Sections (default: both):
#   cpu     no GPU needed: the no-GPU message and exit code with the waiting records, unknown keys,
#           missing and tampered blobs, a key mismatch, nothing to verify, the command line
#   runner  the GPU path with tests/cli/fake_runner.py as the verifier's judge (a stand-in that
#           claims a device and passes or rejects by spec name): a pass is written back verified
#           with its report, a rejection removes the record, a key mismatch is never verified, a
#           kernel for a target the device cannot run stays unverified. Needs nvcc (the verifier
#           compiles each kernel for real); exits 77 without one.
set -uo pipefail
kg=$(realpath "$1")
src=$(realpath "$2")
shift 2
sections=" ${*:-cpu runner} "
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
trap 'rm -rf "$work"' EXIT
unset KERNELGEN_LOG KERNELGEN_NO_DAEMON KERNELGEN_MODE KERNELGEN_REMOTE KERNELGEN_PREBUILT KERNELGEN_RUNNER
export KERNELGEN_CONFIG=$work/no-such.conf
edit="python3 $src/tests/cli/cache_edit.py"

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
run() {  # run EXPECTED_EXIT CMD...: captures stdout/stderr in $out/$err; another exit code fails the suite
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
key_of() {  # key_of SPEC [ARCH]: the cache key `spec check` prints
  "$kg" spec check "$1" --arch "${2:-sm_90a}" --json | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['key'])"
}
state_of() {  # state_of KEY: the record's verification state as `cache ls` says it ("" : no record)
  "$kg" cache ls | awk -v k="$1" '$1 == k {print $5}'
}
use_cache() {  # use_cache NAME [FROM]: a fresh cache dir (a copy of FROM's) as KERNELGEN_CACHE_DIR
  export KERNELGEN_CACHE_DIR=$work/caches/$1
  mkdir -p "$work/caches"
  rm -rf "$KERNELGEN_CACHE_DIR"
  if [[ -n ${2:-} ]]; then
    cp -a "$work/caches/$2" "$KERNELGEN_CACHE_DIR"
  fi
}

if [[ $sections == *" cpu "* ]]; then
  # ---- nothing to verify --------------------------------------------------------------------
  use_cache none
  run 0 "$kg" cache verify
  check "no cache: nothing to verify" contains "$out" "nothing to verify: no cache at $KERNELGEN_CACHE_DIR"
  check "no cache: the cache is not created" test ! -e "$KERNELGEN_CACHE_DIR"
  run 1 "$kg" cache verify 0123456789abcdef0123456789abcdef
  check "no cache, a named key: an error naming it" contains "$err" "0123456789abcdef0123456789abcdef"

  # ---- records made without a GPU ----------------------------------------------------------
  use_cache filled
  for s in causal full alibi_causal; do
    "$kg" emit --no-daemon --no-verify --spec "$src/specs/$s.yaml" >/dev/null 2>&1 || echo "FAIL: cannot emit $s" >&2
  done
  causal=$(key_of "$src/specs/causal.yaml")
  full=$(key_of "$src/specs/full.yaml")
  alibi=$(key_of "$src/specs/alibi_causal.yaml")
  check "emit without verification stores unverified records" test "$(state_of "$causal")" = unverified
  before=$("$kg" cache ls --json)

  # ---- no GPU: one message, the waiting records, exit 77, nothing changed -------------------
  # The GPU is hidden from the verifier's runner (CUDA_VISIBLE_DEVICES reaches it), so this holds
  # on a GPU machine too; here there is none at all.
  use_cache nogpu filled
  CUDA_VISIBLE_DEVICES= run 77 "$kg" cache verify
  check "no GPU: the message says a GPU is needed" contains "$err" "cache verify needs a CUDA GPU"
  check "no GPU: it says why" contains "$err" "there is no CUDA device here"
  check "no GPU: the count of waiting kernels" contains "$err" "3 kernels are waiting to be verified:"
  for k in "$causal" "$full" "$alibi"; do
    check "no GPU: waiting record $k is listed" contains "$err" "  $k  "
  done
  check "no GPU: the summary line" contains "$out" "0 verified, 0 failed, 0 skipped, 3 waiting for a GPU"
  check "no GPU: the records are unchanged" test "$("$kg" cache ls --json)" = "$before"
  CUDA_VISIBLE_DEVICES= run 77 "$kg" cache verify "${full:0:8}"
  check "no GPU, one key by prefix: only it is listed" contains "$err" "1 kernel is waiting to be verified:
  $full  full  sm_90a"
  check "no GPU, one key: the others are not listed" lacks "$err" "$causal"
  # The same through a runner that reports no device (the probe's exit 77), wherever this runs.
  mkdir -p "$work/nodev"
  cp "$src/tests/cli/fake_runner.py" "$work/nodev/"
  touch "$work/nodev/no-device"
  KERNELGEN_RUNNER=$work/nodev/fake_runner.py run 77 "$kg" cache verify
  check "no device (runner probe): the same message" contains "$err" "3 kernels are waiting to be verified:"
  # No runner at all (a build without CUDA): the verifier cannot work, exit 3, still naming the waiting.
  KERNELGEN_RUNNER=$work/no-such-runner run 3 "$kg" cache verify
  check "no runner: it names the runner" contains "$err" "$work/no-such-runner"
  check "no runner: the waiting records" contains "$err" "  $causal  causal  sm_90a"

  # ---- unknown keys ---------------------------------------------------------------------------
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify 0123456789abcdef0123456789abcdef
  check "unknown key: named" contains "$err" "no cache entry with key '0123456789abcdef0123456789abcdef'"
  check "unknown key: how to list keys" contains "$err" "kernelgen cache ls"
  check "unknown key: counted as failed" contains "$out" "0 verified, 1 failed, 0 skipped"
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify "$causal" ffffffffffffffffffffffffffffffff
  check "unknown key beside a good one: the good one still waits" contains "$err" "  $causal  causal  sm_90a"
  check "unknown key beside a good one: exit 1 wins over 77" contains "$out" "1 failed"

  # ---- damaged records: each a clear error naming key and blob, never a crash ----------------
  use_cache missing filled
  $edit "$KERNELGEN_CACHE_DIR" record "$causal" canonical_digest=00000000000000000000000000000000
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify
  check "missing canonical blob: key and blob named" contains "$err" \
    "$causal (causal): the canonical spec blob 00000000000000000000000000000000 is missing or damaged"
  check "missing canonical blob: not verified" contains "$err" "; not verified"
  check "missing canonical blob: the others still wait" contains "$err" "2 kernels are waiting"
  check "missing canonical blob: the summary" contains "$out" "0 verified, 1 failed, 0 skipped, 2 waiting for a GPU"

  use_cache tampered filled
  canon=$($edit "$KERNELGEN_CACHE_DIR" show "$full" canonical_digest)
  $edit "$KERNELGEN_CACHE_DIR" corrupt "$canon"
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify "$full"
  check "tampered canonical blob: key and blob named" contains "$err" \
    "$full (full): the canonical spec blob $canon is missing or damaged"
  check "tampered canonical blob: the digest check said so" contains "$err" "digest"
  source_digest=$($edit "$KERNELGEN_CACHE_DIR" show "$alibi" source_digest)
  $edit "$KERNELGEN_CACHE_DIR" corrupt "$source_digest"
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify "$alibi"
  check "tampered source blob: key and blob named" contains "$err" \
    "$alibi (alibi_causal): the source blob $source_digest is missing or damaged"

  # The spec text altered consistently: its blob matches its digest, but it means another spec.
  use_cache mismatch filled
  "$kg" cache show "$causal" --canonical | sed 's/(q_idx:i >= kv_idx:i)/(q_idx:i > kv_idx:i)/' >"$work/altered.txt"
  check "the altered spec differs" bash -c "! \"$kg\" cache show $causal --canonical | cmp -s - '$work/altered.txt'"
  altered=$($edit "$KERNELGEN_CACHE_DIR" blob "$work/altered.txt")
  $edit "$KERNELGEN_CACHE_DIR" record "$causal" canonical_digest="$altered"
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify
  check "key mismatch: refused" contains "$err" "$causal (causal): key mismatch: its canonical spec for sm_90a has the key"
  check "key mismatch: the record stays unverified" test "$(state_of "$causal")" = unverified
  check "key mismatch: the others wait" contains "$err" "2 kernels are waiting"
  # A canonical text that is not one at all.
  printf 'name: causal\n' >"$work/garbage.txt"
  garbage=$($edit "$KERNELGEN_CACHE_DIR" blob "$work/garbage.txt")
  $edit "$KERNELGEN_CACHE_DIR" record "$full" canonical_digest="$garbage"
  CUDA_VISIBLE_DEVICES= run 1 "$kg" cache verify "$full"
  check "unreadable canonical spec: named" contains "$err" "$full (full): its canonical spec (blob $garbage) cannot be used"

  # ---- verified records ---------------------------------------------------------------------
  use_cache verified filled
  for k in "$causal" "$full" "$alibi"; do
    $edit "$KERNELGEN_CACHE_DIR" record "$k" verification=verified
  done
  CUDA_VISIBLE_DEVICES= run 0 "$kg" cache verify
  check "all verified: nothing to verify" contains "$out" "nothing to verify: every kernel in $KERNELGEN_CACHE_DIR is verified (3)"
  CUDA_VISIBLE_DEVICES= run 0 "$kg" cache verify "$causal"
  check "a named verified record is skipped with a note" contains "$err" "verified already (--force verifies it again)"
  check "a named verified record: the summary" contains "$out" "0 verified, 0 failed, 1 skipped"
  CUDA_VISIBLE_DEVICES= run 77 "$kg" cache verify --force "$causal"
  check "--force: a verified record waits for the GPU again" contains "$err" "1 kernel is waiting"

  # ---- the command line -----------------------------------------------------------------------
  use_cache cmdline filled
  run 2 "$kg" cache verify --force
  check "--force needs keys" contains "$err" "name them"
  run 2 "$kg" cache verify --arch hopper
  check "a bad --arch" contains "$err" "unknown target architecture 'hopper'"
  CUDA_VISIBLE_DEVICES= run 0 "$kg" cache verify --arch 80
  check "--arch: only that target's records" contains "$out" "nothing to verify: no unverified kernel in $KERNELGEN_CACHE_DIR for sm_80"
  CUDA_VISIBLE_DEVICES= run 77 "$kg" cache verify --arch sm_90a
  check "--arch sm_90a: all three wait" contains "$err" "3 kernels are waiting"
  KERNELGEN_MODE=read_only run 1 "$kg" cache verify
  check "mode read_only: refused" contains "$err" "mode read_only never writes"
  run 0 "$kg" cache verify --help
  check "--help: what it does" contains "$out" "stays verified wherever its record travels"
  check "--help: the exit codes" contains "$out" "77 no CUDA device here"
  run 0 "$kg" --help
  check "kernelgen --help lists it" contains "$out" "kernelgen cache verify"
fi

if [[ $sections == *" runner "* ]]; then
  nvcc=${KERNELGEN_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  if [[ ! -x $nvcc ]]; then
    echo "no nvcc: the runner section is skipped"
    [[ $sections == " runner " ]] && exit 77
  else
    export KERNELGEN_NVCC=$nvcc
    mkdir -p "$work/judge"
    cp "$src/tests/cli/fake_runner.py" "$work/judge/"
    echo sm_80 >"$work/judge/arch"
    echo "document_mask reject" >"$work/judge/verdicts"
    export KERNELGEN_RUNNER=$work/judge/fake_runner.py
    use_cache judged
    # Sorted by name, they are verified in this order: alibi_causal (a key mismatch: refused before
    # anything runs), causal (passes; the device says it is sm_80), document_mask (rejected), full
    # (for sm_90a, which an sm_80 device cannot run: skipped without a compile).
    for s in causal document_mask alibi_causal; do
      "$kg" emit --no-daemon --no-verify --arch sm_80 --spec "$src/specs/$s.yaml" >/dev/null 2>&1 ||
        echo "FAIL: cannot emit $s" >&2
    done
    "$kg" emit --no-daemon --no-verify --spec "$src/specs/full.yaml" >/dev/null 2>&1 || echo "FAIL: cannot emit full" >&2
    causal=$(key_of "$src/specs/causal.yaml" sm_80)
    doc=$(key_of "$src/specs/document_mask.yaml" sm_80)
    alibi=$(key_of "$src/specs/alibi_causal.yaml" sm_80)
    full=$(key_of "$src/specs/full.yaml")
    "$kg" cache show "$alibi" --canonical | sed 's/(q_idx:i >= kv_idx:i)/(q_idx:i > kv_idx:i)/' >"$work/altered.txt"
    altered=$($edit "$KERNELGEN_CACHE_DIR" blob "$work/altered.txt")
    $edit "$KERNELGEN_CACHE_DIR" record "$alibi" canonical_digest="$altered"
    t0=$SECONDS
    run 1 "$kg" cache verify
    echo "cache verify of 2 kernels through nvcc and the stand-in judge: $((SECONDS - t0)) s"
    check "runner: progress lines" contains "$err" "kernelgen: verifying 1 of 3: causal (key $causal, sm_80)"
    check "runner: the pass is said" contains "$err" "kernelgen: causal: verified in"
    check "runner: the summary" contains "$out" "1 verified, 2 failed, 1 skipped"
    check "runner: the passed record is verified" test "$(state_of "$causal")" = verified
    "$kg" cache show "$causal" --report >"$work/report.json" 2>&1
    check "runner: the verified record has its report" \
      python3 -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['verdict'] == 'pass', r['verdict']; assert r['device']['name'] == 'Fake GPU'" "$work/report.json"
    "$kg" cache show "$causal" >"$work/record.json"
    check "runner: the record keeps its blobs" \
      python3 -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['report_digest'] and r['source_digest'] and r['canonical_digest']" "$work/record.json"
    check "runner: the rejection's findings are printed" contains "$out" "fake runner: out differs"
    check "runner: the rejection says the record is removed" contains "$err" "its record is removed from the local cache"
    check "runner: the rejected record is gone" test -z "$(state_of "$doc")"
    check "runner: a key mismatch is refused" contains "$err" "$alibi (alibi_causal): key mismatch"
    check "runner: a key mismatch is never verified" test "$(state_of "$alibi")" = unverified
    check "runner: a target the device cannot run is skipped" contains "$err" \
      "skipping full (key $full, sm_90a): this GPU (sm_80) cannot run sm_90a kernels; it stays unverified"
    check "runner: that record stays unverified" test "$(state_of "$full")" = unverified
    # The rejected spec is generated again by the next emit (here without a GPU: unverified).
    run 0 "$kg" emit --no-daemon --no-verify --arch sm_80 --spec "$src/specs/document_mask.yaml"
    check "runner: the next emit generates the rejected kernel again" test "$(state_of "$doc")" = unverified
    # Verified records are left alone unless named with --force; then verified again.
    run 0 "$kg" cache verify "$causal"
    check "runner: a verified record is skipped" contains "$out" "0 verified, 0 failed, 1 skipped"
    run 0 "$kg" cache verify --force "${causal:0:12}"
    check "runner: --force verifies it again" contains "$out" "1 verified, 0 failed, 0 skipped"
    check "runner: still verified" test "$(state_of "$causal")" = verified
    # A runner that finds no device at run time (after a probe that found one): left unverified.
    echo "document_mask nodevice" >"$work/judge/verdicts"
    run 0 "$kg" cache verify "$doc"
    check "runner: no device at run time: skipped" contains "$out" "0 verified, 0 failed, 1 skipped"
    check "runner: no device at run time: unverified" test "$(state_of "$doc")" = unverified
  fi
fi

echo "cache_verify_test: $passed passed, $failed failed"
[[ $failed == 0 ]]

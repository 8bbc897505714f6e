#!/usr/bin/env bash
# Long fuzzing runs of tests/fuzz/ (fuzz_spec, fuzz_protocol, fuzz_answer, fuzz_bundle): builds the libFuzzer variant
# (clang, -fsanitize=fuzzer,address,undefined; -DKERNELGEN_FUZZ=libfuzzer) in its own build
# directory and runs each target until it has tried at least RUNS inputs, then prints, per target,
# inputs tried, crashes, hangs and the time taken.
#
#   bench/fuzz.sh [--runs N] [--timeout S] [--max-len BYTES] [--build-dir DIR] [--targets "fuzz_spec fuzz_protocol fuzz_answer fuzz_bundle"]
#
# A crash or a hang (one input over --timeout seconds, default 10) does not end a target's run:
# it is counted, its input is kept under DIR/findings/<target>/ (libFuzzer's crash-*/timeout-*
# files), and libFuzzer starts again for the inputs still to go. The grown corpus is kept in
# DIR/corpus/<target>/ (seeded with specs/, the test specs and tests/fuzz/seeds/), so a second run
# goes on from where the first stopped. Exit status 0 when no target crashed or hung.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
runs=1000000
timeout=10
max_len=4096
build=$src/build-fuzz
targets="fuzz_spec fuzz_protocol fuzz_answer fuzz_bundle"
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --max-len) max_len=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--timeout S] [--max-len BYTES] [--build-dir DIR] [--targets LIST]" >&2; exit 2 ;;
  esac
done

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
mkdir -p "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DKERNELGEN_BUILD_TESTS=ON -DKERNELGEN_FUZZ=libfuzzer "${launcher[@]}" \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 2; }
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets || exit 2

seeds_for() {
  case $1 in
    fuzz_spec) echo "$src/specs $src/tests/gpu/specs $src/bench/specs $src/tests/fuzz/seeds/spec" ;;
    fuzz_protocol) echo "$src/tests/fuzz/seeds/protocol" ;;
    fuzz_answer) echo "$src/tests/fuzz/seeds/answer" ;;
    fuzz_bundle) echo "$src/tests/fuzz/seeds/bundle" ;;
  esac
}

status=0
for t in $targets; do
  corpus=$build/corpus/$t
  findings=$build/findings/$t
  mkdir -p "$corpus" "$findings"
  dict=$src/tests/fuzz/$t.dict
  dict_opt=()
  [[ -f $dict ]] && dict_opt=(-dict="$dict")
  tried=0
  crashes=0
  hangs=0
  start=$(date +%s.%N)
  log=$build/$t.log
  : >"$log"
  while ((tried < runs)); do
    # shellcheck disable=SC2046
    "$build/tests/fuzz/$t" -runs=$((runs - tried)) -timeout="$timeout" -max_len="$max_len" -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$findings/" "${dict_opt[@]}" "$corpus" $(seeds_for "$t") \
      >>"$log" 2>&1
    rc=$?
    # Inputs of this session: "Done N runs" at a normal end, else the last "#N" status line.
    done_runs=$(grep -aoE '^Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
    last=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    if ((rc == 0)); then
      tried=$((tried + ${done_runs:-${last:-0}}))
      break
    fi
    tried=$((tried + ${last:-0} + 1))
    if tail -n 40 "$log" | grep -aq 'ERROR: libFuzzer: timeout'; then
      hangs=$((hangs + 1))
    else
      crashes=$((crashes + 1))
    fi
    mv "$log" "$log.$((crashes + hangs))"
    : >"$log"
    if ((crashes + hangs >= 50)); then
      echo "$t: 50 findings, stopping early" >&2
      break
    fi
  done
  end=$(date +%s.%N)
  printf '%s: inputs tried %d, crashes %d, hangs %d, %.0f s (findings in %s)\n' "$t" "$tried" "$crashes" "$hangs" \
    "$(echo "$end - $start" | bc)" "$findings"
  ((crashes + hangs == 0)) || status=1
done
exit $status

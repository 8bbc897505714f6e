#!/usr/bin/env bash
# N parallel CMake builds (default 8) of one small project sharing one kernel cache: every build
# succeeds, all write the same kernels, and the daemon generates each kernel once.
#   tests/daemon/parallel_builds.sh <kernelgen> <source-dir> [N]
# The project uses kernelgen_add_attention() on every spec in specs/ and builds only the
# generation step (a custom target over the generated sources): compiling the kernels with nvcc
# would take minutes per build on a small machine and tests nothing of the daemon. Configuring
# needs a CUDA compiler (kernelgen_add_attention requires CUDA); without one this exits 77 (skip).
set -uo pipefail
kg=$(realpath "$1")
src=$2
n=${3:-8}
if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "no nvcc: skipped"
  exit 77
fi
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
export KERNELGEN_CACHE_DIR=$work/cache
export KERNELGEN_DAEMON=$(dirname "$kg")/kernelgend
unset KERNELGEN_NO_DAEMON KERNELGEN_TEST_JOB_DELAY_MS
trap '"$kg" daemon stop >/dev/null 2>&1; rm -rf "$work"' EXIT

mkdir -p "$work/project"
cat >"$work/project/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(kg_parallel LANGUAGES CXX CUDA)
include("${KG_SOURCE_DIR}/cmake/KernelGen.cmake")
file(GLOB specs "${KG_SOURCE_DIR}/specs/*.yaml")
add_library(kernels STATIC)
kernelgen_add_attention(kernels SPECS ${specs} CUDA_ARCHITECTURES 90a)
get_target_property(generated kernels SOURCES)
add_custom_target(kernelgen_sources DEPENDS ${generated})
CMAKE

nspecs=$(ls "$src"/specs/*.yaml | wc -l)
start=$(date +%s.%N)
pids=()
for i in $(seq "$n"); do
  (
    cmake -S "$work/project" -B "$work/build$i" -G Ninja -DKG_SOURCE_DIR="$src" \
      -DKERNELGEN_EXECUTABLE="$kg" >"$work/build$i.log" 2>&1 &&
      cmake --build "$work/build$i" --target kernelgen_sources >>"$work/build$i.log" 2>&1
  ) &
  pids+=($!)
done
fails=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    fails=$((fails + 1))
    echo "build $((i + 1)) failed:" >&2
    tail -20 "$work/build$((i + 1)).log" >&2
  fi
done
elapsed=$(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$start")

status=0
stats=$("$kg" daemon status --json)
gens=$(python3 -c "import json, sys; print(json.loads(sys.argv[1])['stats']['generations'])" "$stats")
echo "$n parallel builds of $nspecs kernels each: $fails failed, $elapsed s, daemon generations: $gens"
[[ $fails == 0 ]] || status=1
for i in $(seq 2 "$n"); do
  if ! diff -r "$work/build1/kernelgen/kernels" "$work/build$i/kernelgen/kernels" >/dev/null; then
    echo "FAIL: build $i wrote other kernels than build 1" >&2
    status=1
  fi
done
count=$(ls "$work/build1/kernelgen/kernels"/*.cu | wc -l)
[[ $count == "$nspecs" ]] || { echo "FAIL: build 1 has $count kernels, expected $nspecs" >&2; status=1; }
[[ $gens == "$nspecs" ]] || { echo "FAIL: $gens generations for $nspecs specs" >&2; status=1; }
[[ $("$kg" cache ls | wc -l) == "$nspecs" ]] || { echo "FAIL: the cache does not hold $nspecs kernels" >&2; status=1; }
exit $status

#!/usr/bin/env bash
# kernelgen_add_attention(... LOCKFILE ... MODE ...) in a small CMake project (Ninja, a private
# cache): a locked build passes, a semantic spec change fails the build with the lockfile's
# message, `kernelgen lock --update` fixes it; MODE OFFLINE fails on a kernel that is not cached;
# bad arguments are refused at configure time.
#   tests/cmake/lockfile_project.sh <kernelgen> <source-dir>
# Only the generation step is built (a custom target over the generated files): CUDA is not
# enabled (its compiler check alone takes a minute), CMAKE_CUDA_COMPILER is set by hand, and no
# kernel is compiled.
set -uo pipefail
kg=$(realpath "$1")
src=$(realpath "$2")
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
export KERNELGEN_CACHE_DIR=$work/cache
export KERNELGEN_CONFIG=$work/no-such.conf
export KERNELGEN_NO_DAEMON=1  # misses are generated in the build step itself (template kernels, no GPU)
unset KERNELGEN_LOG KERNELGEN_MODE
trap 'rm -rf "$work"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
flat() { tr '\n' ' ' <<<"$1" | tr -s ' '; }  # CMake wraps its messages

proj=$work/proj
mkdir -p "$proj/specs"
cp "$src/specs/causal.yaml" "$src/specs/full.yaml" "$proj/specs/"
echo "// nothing" >"$proj/stub.cc"
cat >"$proj/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(kg_lockfile LANGUAGES CXX)
set(CMAKE_CUDA_COMPILER /bin/true)
include("${KG_SOURCE_DIR}/cmake/KernelGen.cmake")
add_library(kernels STATIC stub.cc)
set(extra)
if(DEFINED KG_LOCKFILE)
  list(APPEND extra LOCKFILE "${KG_LOCKFILE}")
endif()
if(DEFINED KG_MODE)
  list(APPEND extra MODE "${KG_MODE}")
endif()
kernelgen_add_attention(kernels SPECS ${KG_SPECS} CUDA_ARCHITECTURES 90a ${extra})
get_target_property(generated kernels SOURCES)
list(FILTER generated INCLUDE REGEX "\\.(cu|h)$")
add_custom_target(kernelgen_sources DEPENDS ${generated})
CMAKE

configure() {  # configure BUILD_DIR -D...: output in $log, status in $rc
  local dir=$1
  shift
  log=$(cmake -S "$proj" -B "$dir" -G Ninja -DKG_SOURCE_DIR="$src" -DKERNELGEN_EXECUTABLE="$kg" "$@" 2>&1)
  rc=$?
}
build() {  # build BUILD_DIR: output in $log, status in $rc
  log=$(cmake --build "$1" --target kernelgen_sources 2>&1)
  rc=$?
}

# The kernels are cached by a first build (or kernelgen emit), then locked.
for s in causal full; do
  "$kg" emit --no-verify --spec "$proj/specs/$s.yaml" >/dev/null || echo "FAIL: emit $s" >&2
done
(cd "$proj" && "$kg" lock specs/causal.yaml specs/full.yaml >/dev/null)
check "kernelgen lock wrote the project's lockfile" test -s "$proj/kernelgen.lock"

b=$work/build
configure "$b" "-DKG_SPECS=specs/causal.yaml;specs/full.yaml" -DKG_LOCKFILE=kernelgen.lock
check "a project with LOCKFILE configures" test "$rc" = 0
check "the generation step gets --lockfile with the absolute path" grep -q -- "--lockfile $proj/kernelgen.lock" "$b/build.ninja"
build "$b"
check "the locked build passes" test "$rc" = 0
check "... and generates the sources" test -s "$b/kernelgen/kernels/causal.cu" -a -s "$b/kernelgen/kernels/full.h"
build "$b"
check "a second build has nothing to do" contains "$log" "no work to do"
touch "$proj/kernelgen.lock"
build "$b"
check "the lockfile is a dependency of every generation step" contains "$log" "KernelGen: attention kernel causal"
cp "$b/kernelgen/kernels/causal.cu" "$work/causal.cu.locked"

printf '# only a comment\n' >>"$proj/specs/causal.yaml"
build "$b"
check "a comment-only spec change still builds" test "$rc" = 0

sed -i 's/^mask_mod: .*/mask_mod: q_idx > kv_idx/' "$proj/specs/causal.yaml"
build "$b"
check "after a semantic spec change the build fails" test "$rc" != 0
check "... with the lockfile's message" contains "$log" "causal resolves to key"
check "... saying the spec or KernelGen changed" contains "$log" "but $proj/kernelgen.lock locks it at key"
check "... and how to accept it" contains "$log" "accept it with \`kernelgen lock --update --lockfile $proj/kernelgen.lock $proj/specs/causal.yaml\`"
check "... leaving the old kernel in place" cmp -s "$b/kernelgen/kernels/causal.cu" "$work/causal.cu.locked"
build "$b"
check "... and fails again on the next build" test "$rc" != 0
(cd "$proj" && "$kg" lock --update specs/causal.yaml >/dev/null)
build "$b"
check "after kernelgen lock --update the build passes" test "$rc" = 0
check "... with the new kernel" bash -c "! cmp -s '$b/kernelgen/kernels/causal.cu' '$work/causal.cu.locked'"

# MODE OFFLINE: a spec that is not cached fails the build, and nothing is generated.
cp "$src/specs/alibi_causal.yaml" "$proj/specs/"
configure "$work/offline" -DKG_SPECS=specs/alibi_causal.yaml -DKG_MODE=OFFLINE
check "MODE OFFLINE configures" test "$rc" = 0
check "... and passes --mode offline" grep -q -- "--mode offline" "$work/offline/build.ninja"
build "$work/offline"
check "MODE OFFLINE fails on a kernel that is not cached" test "$rc" != 0
check "... with the offline message" contains "$(flat "$log")" "alibi_causal (key "
check "... ... naming the mode and the command" contains "$(flat "$log")" "is not in the cache and the mode is offline: produce it with \`kernelgen emit --spec $proj/specs/alibi_causal.yaml\`"
check "... and no daemon" test -z "$(ls -A "$XDG_RUNTIME_DIR/kernelgen" 2>/dev/null)"
configure "$work/offline_hit" -DKG_SPECS=specs/full.yaml -DKG_MODE=offline -DKG_LOCKFILE=kernelgen.lock
build "$work/offline_hit"
check "MODE offline (any case) with LOCKFILE builds from the cache" test "$rc" = 0

# Bad arguments are refused when configuring.
configure "$work/badmode" -DKG_SPECS=specs/full.yaml -DKG_MODE=sometimes
check "MODE sometimes is refused" test "$rc" != 0
check "... saying what is allowed" contains "$(flat "$log")" "MODE 'sometimes' is not one of ONLINE, OFFLINE, READ_ONLY, RECACHE"
configure "$work/nolock" -DKG_SPECS=specs/full.yaml -DKG_LOCKFILE=missing.lock
check "a missing LOCKFILE is refused" test "$rc" != 0
check "... saying how to write it" contains "$(flat "$log")" "LOCKFILE $proj/missing.lock does not exist; build once without LOCKFILE, then write it with"

echo "lockfile project tests: $passed passed, $failed failed"
[[ $failed == 0 ]]

#!/usr/bin/env bash
# Stages everything the GPU run needs into .gpu/ (git-ignored) at the repository root, so that the
# device machine (which gets a copy of the working tree plus .gpu/, and builds nothing) can run
# bench/gpu_entry.sh.
#
#   bench/run_gpu.sh [build-dir]        (default: build-gpu; builds the needed targets first)
#
# The whole device run, step by step:
#   1. here:   cmake -S . -B build-gpu -G Ninja && bench/run_gpu.sh build-gpu
#   2. device: from the repository root, with .gpu carried along (the `run` tool: carry [".gpu"]):
#                bash bench/gpu_entry.sh tests      # kg_gpu_tests --all, --reference-vs-cpu (~2 min)
#                bash bench/gpu_entry.sh flex       # flex_check.py (~5 min: one torch.compile per case)
#                bash bench/gpu_entry.sh bench --seqs 4096     # attention_bench.py, S=4096
#                bash bench/gpu_entry.sh bench --seqs 16384    # and S=16384
#                bash bench/gpu_entry.sh verify     # adversarial suite + verifier timing (~3 min)
#                KG_VERIFY_REPEAT=100 bash bench/gpu_entry.sh verify-repeat   # no false rejects
#                bash bench/gpu_entry.sh fuzz       # differential fuzzer, GPU part (~1-2 min)
#              or `bash bench/gpu_entry.sh all` when one command may run long enough. Logs and JSON
#              land in $OUT (at most 8 files); a short summary is printed last.
#
# Layout of .gpu/ (the device copy is limited to 64 MiB; all of it is about 80 MB, so a run carries
# part: the tests and verify phases need no kernels/, flex and bench no kg_gpu_tests*):
#   bin/kg_gpu_tests          GPU test program (static CUDA runtime), sm_90a (wgmma) kernels
#   bin/kg_gpu_tests_sm80     the same for the mma.sync family (kernels generated for sm_90)
#   bin/kernelgen, bin/kernelgend, bin/kg_verify_runner, bin/kg_candidate_host, bin/kg_verify_expect,
#   bin/kg_fake_llm (the scripted OpenAI-compatible server of the loop's tests)
#                             the verifier (compiles with the device's nvcc, /usr/local/cuda/bin)
#   kernels/*.so              libkg_spec_kernels.so, libkg_bench_kernels.so (ctypes)
#   mods/, bench_mods/        torch-flavor Python mods of every spec (kg_spec_python)
#   scripts/                  flex_check.py, kg_abi.py, attention_bench.py
#   fuzz/                     the differential fuzzer's random specs and their kernels
#                             (kg_gpu_fuzz_gen: KG_GPU_FUZZ_COUNT specs, default 40, ~0.3 MB each,
#                             seed KG_GPU_FUZZ_SEED, default 1; 0 specs: not staged). Generated in
#                             the build directory (nvcc: ~45 s of CPU per spec, 28 min for 40
#                             on a busy 2-core machine) and reused
#                             while the code generator, its templates and the spec generator are
#                             unchanged (a stamp of their sources in the directory).
#   lib/                      shared libraries the above need (ldd), except the system's own:
#                             libc, libm, libstdc++, libgcc_s, ld-linux, libpthread, libdl, librt,
#                             libcuda (shipping libc breaks the device machine). gpu_entry.sh drops
#                             those the device already has (ldconfig -p); it lacks liblmdb and
#                             libyaml-cpp.so.0.7, for instance.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-gpu}
build=$(cd "$build" && pwd)
stage=$root/.gpu

echo "building GPU targets in $build"
cmake --build "$build" --target kg_gpu_tests kg_gpu_tests_sm80 kg_spec_kernels kg_bench_kernels kg_spec_mods kg_bench_mods \
  kernelgen kernelgend kg_verify_runner kg_candidate_host kg_verify_expect kg_gpu_fuzz_gen kg_fake_llm

fuzz_count=${KG_GPU_FUZZ_COUNT:-40}
fuzz_seed=${KG_GPU_FUZZ_SEED:-1}
fuzz_dir=$build/gpu_fuzz-seed$fuzz_seed-n$fuzz_count
fuzz_gen=$build/tests/lowering/kg_gpu_fuzz_gen
# What the generated kernels depend on: the code generator, its templates and the spec generator
# (not the rest of the tree, so that unrelated changes do not cost a regeneration of ~30 min).
fuzz_stamp=$(cat "$root"/core/codegen/*.cc "$root"/core/codegen/*.h "$root"/core/codegen/templates/* \
  "$root"/core/spec/*.cc "$root"/core/spec/*.h "$root"/tests/lowering/spec_gen.* "$root"/tests/lowering/gpu_fuzz_gen.cc |
  sha256sum | cut -d' ' -f1)
if ((fuzz_count > 0)) && [[ $(cat "$fuzz_dir/stamp" 2>/dev/null) != "$fuzz_stamp" ]]; then
  echo "generating $fuzz_count fuzz specs and their kernels into $fuzz_dir"
  "$fuzz_gen" --out "$fuzz_dir" --count "$fuzz_count" --seed "$fuzz_seed" -j "$(nproc)"
  echo "$fuzz_stamp" >"$fuzz_dir/stamp"
fi

gpu=$build/tests/gpu
for f in "$gpu/kg_gpu_tests" "$gpu/libkg_spec_kernels.so" "$gpu/libkg_bench_kernels.so"; do
  [[ -f $f ]] || { echo "run_gpu.sh: missing $f (did the build succeed?)" >&2; exit 1; }
done

rm -rf "$stage"
mkdir -p "$stage"/{bin,kernels,lib,mods,bench_mods,scripts}
# Debug info off (symbols stay): the binaries are much smaller and still name the failing function.
strip --strip-debug -o "$stage/bin/kg_gpu_tests" "$gpu/kg_gpu_tests"
strip --strip-debug -o "$stage/bin/kg_gpu_tests_sm80" "$gpu/kg_gpu_tests_sm80"
strip --strip-debug -o "$stage/bin/kernelgen" "$build/wrapper/kernelgen"
strip --strip-debug -o "$stage/bin/kernelgend" "$build/wrapper/kernelgend"
strip --strip-debug -o "$stage/bin/kg_verify_runner" "$build/wrapper/kg_verify_runner"
strip --strip-debug -o "$stage/bin/kg_candidate_host" "$build/wrapper/kg_candidate_host"
strip --strip-debug -o "$stage/bin/kg_verify_expect" "$build/tests/verify/kg_verify_expect"
strip --strip-debug -o "$stage/bin/kg_fake_llm" "$build/tests/kg_fake_llm"
# LMDB's tools, for the tampering part of tests/cli/cache_verify_gpu_test.sh (lmdb-utils).
for tool in mdb_dump mdb_load; do
  if command -v "$tool" >/dev/null; then cp "$(command -v "$tool")" "$stage/bin/$tool"; fi
done
strip --strip-debug -o "$stage/kernels/libkg_spec_kernels.so" "$gpu/libkg_spec_kernels.so"
strip --strip-debug -o "$stage/kernels/libkg_bench_kernels.so" "$gpu/libkg_bench_kernels.so"
cp "$gpu"/mods/*.py "$stage/mods/"
cp "$gpu"/bench_mods/*.py "$stage/bench_mods/"
cp "$root/tests/gpu/flex_check.py" "$root/tests/gpu/kg_abi.py" "$root/bench/attention_bench.py" "$stage/scripts/"
if ((fuzz_count > 0)); then
  cp -r "$fuzz_dir" "$stage/fuzz"
fi

# Shared libraries from ldd, minus the system's own.
skip='^(linux-vdso|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|ld-linux|libpthread\.so|libdl\.so|librt\.so|libcuda\.so)'
for bin in "$stage"/bin/* "$stage"/kernels/*.so; do  # (fuzz/ carries its own libcudart)
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
    if [[ $name =~ $skip ]]; then
      continue
    fi
    if [[ ! -e $stage/lib/$name ]]; then
      cp -L "$path" "$stage/lib/$name"
      echo "  staged $name (from $path, needed by $(basename "$bin"))"
    fi
  done
done

# libcurl, libcrypto and libhiredis are loaded with dlopen when first used (core/util/curl_library.h,
# core/util/hiredis_library.h), so ldd of the binaries does not list them: stage them and what they
# need (gpu_entry.sh drops what the device already has).
for want in libcurl.so.4 libcrypto.so.3 libhiredis.so.0.14; do
  # awk reads to the end: an early exit would stop ldconfig with SIGPIPE, which pipefail turns into
  # this script's exit (status 141) before the rest is staged.
  path=$(ldconfig -p | awk -v n="$want" '$1 == n && p == "" { p = $NF } END { print p }')
  [[ -n $path ]] || { echo "run_gpu.sh: $want not found here" >&2; exit 1; }
  { echo "$want $path"; ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'; } | while read -r name lib; do
    if [[ $name =~ $skip || -e $stage/lib/$name ]]; then
      continue
    fi
    cp -L "$lib" "$stage/lib/$name"
    echo "  staged $name (from $lib, loaded at run time)"
  done
done

size_kb=$(du -sk "$stage" | cut -f1)
echo "staged into $stage: $((size_kb / 1024)) MB"
du -sh "$stage"/* | sed 's/^/  /'
if ((size_kb > 60 * 1024)); then
  echo "run_gpu.sh: .gpu/ is over 60 MB; the device copy is limited to 64 MiB: carry part of it per run" >&2
  echo "  (tests and verify: all but .gpu/kernels; flex and bench: all but bin/kg_gpu_tests*)" >&2
  exit 1
fi
echo "next, on the device from the repository root (carry .gpu): bash bench/gpu_entry.sh [tests|flex|bench|verify|verify-repeat|fuzz|all]"

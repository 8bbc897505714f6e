#!/usr/bin/env bash
# The main job: build KernelGen, install it into the build tree, then build and run the example
# project, whose kernels come from kernelgen_add_attention() with the embedded defaults (template
# generator, local LMDB cache; no LLM). Without a GPU the demo says so after building.
set -euo pipefail
source "$(dirname "$0")/env.sh"

cmake -S "$KG_ROOT" -B "$KG_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKERNELGEN_BUILD_TESTS=OFF
cmake --build "$KG_BUILD" -j "$KG_JOBS"
cmake --install "$KG_BUILD" --prefix "$KG_BUILD/install" >/dev/null

demo_build="$KG_BUILD/attention_demo"
cmake -S "$KG_ROOT/examples/attention_demo" -B "$demo_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$KG_BUILD/install"
cmake --build "$demo_build" -j "$KG_JOBS"
"$KG_BUILD/install/bin/kernelgen" cache stats
"$demo_build/attention_demo"

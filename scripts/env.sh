# Sourced by the scripts: puts nvcc on PATH and picks the build directory.
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
KG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KG_BUILD=${KG_BUILD:-$KG_ROOT/build}
KG_JOBS=${KG_JOBS:-$(nproc)}

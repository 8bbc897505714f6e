#!/usr/bin/env bash
# Installs what building and testing KernelGen needs on Debian 12 (bookworm). Idempotent: installs
# only missing packages, so it runs offline once everything is there. Needs root or sudo to install.
#
# The CUDA Toolkit (nvcc 13, /usr/local/cuda) is not a Debian package: install it from NVIDIA's
# repository (package cuda-toolkit-13-0) first; this script checks that it is there.
set -euo pipefail

# Building KernelGen.
build_packages=(
  build-essential cmake ninja-build pkg-config git
  libyaml-cpp-dev liblmdb-dev lmdb-utils libxxhash-dev nlohmann-json3-dev libcurl4-openssl-dev
  libcli11-dev libgtest-dev libgmock-dev libexpected-dev libseccomp-dev libssl-dev libhiredis-dev
)
# Running its tests: python3 (shell suites), chromium (tests/cli/report_chromium.sh opens the
# report page headless), nginx and redis-server (the shared-cache tests start them on loopback).
test_packages=(
  python3 chromium nginx redis-server
)
packages=("${build_packages[@]}" "${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

nvcc_bin=$(command -v nvcc || true)
if [[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc_bin=/usr/local/cuda/bin/nvcc
fi
if [[ -z "$nvcc_bin" ]]; then
  echo "install-deps: nvcc not found. Install the CUDA Toolkit 13 (NVIDIA's cuda-toolkit-13-0 package)" \
       "so that /usr/local/cuda/bin/nvcc exists, then run this again." >&2
  exit 1
fi
echo "install-deps: $("$nvcc_bin" --version | tail -n 1)"

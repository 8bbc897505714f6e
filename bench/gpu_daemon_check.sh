#!/usr/bin/env bash
# Runs ON the GPU machine after bench/gpu_entry.sh set up .gpu/ (libraries on LD_LIBRARY_PATH):
# a cache miss through a daemon that the client spawns (with its whitelisted environment), which
# generates, verifies on the GPU and stores; then a hit; then the record must say `verified`.
#   bash bench/gpu_daemon_check.sh [spec...]     (default: specs/causal.yaml specs/document_mask.yaml)
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export KERNELGEN_NVCC=${KERNELGEN_NVCC:-/usr/local/cuda/bin/nvcc}
work=$(mktemp -d)
export KERNELGEN_CACHE_DIR=$work/cache XDG_RUNTIME_DIR=$work/run
mkdir -p "$XDG_RUNTIME_DIR"
kg=.gpu/bin/kernelgen
specs=("$@")
((${#specs[@]})) || specs=(specs/causal.yaml specs/document_mask.yaml)
status=0
for s in "${specs[@]}"; do
  start=$(date +%s%N)
  if KERNELGEN_LOG=info "$kg" emit --spec "$s" --out-dir "$work/out" 2>"$work/err"; then
    echo "daemon emit $s: ok ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
  else
    echo "daemon emit $s: FAILED"; cat "$work/err"; status=1
  fi
  KERNELGEN_LOG=info "$kg" emit --spec "$s" --out-dir "$work/out2" 2>&1 | grep -o "cache hit.*" || status=1
done
"$kg" cache ls
n_verified=$("$kg" cache ls | grep -c " verified")
echo "records verified on this GPU: $n_verified of ${#specs[@]}"
((n_verified == ${#specs[@]})) || status=1
"$kg" daemon status | head -20
pid=$("$kg" daemon status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
tr '\0' '\n' </proc/"$pid"/environ | cut -d= -f1 | sort | tr '\n' ' '; echo "(the daemon's environment)"
"$kg" daemon stop
log=$(ls "$XDG_RUNTIME_DIR"/kernelgen/*.log 2>/dev/null | head -1)
[[ -n $log ]] && tail -5 "$log"
echo "gpu_daemon_check: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status

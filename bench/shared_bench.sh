#!/usr/bin/env bash
# Shared-cache figures (docs/benchmarks.md, "Shared caches"): whole-process remote hits over
# loopback (HTTP with nginx, Redis), a build step per spec for 100 specs that all hit the remote,
# and the import of a bundle of N kernels.
#   bash bench/shared_bench.sh <kernelgen> <source-dir> [specs (100)] [bundle kernels (1000)]
set -uo pipefail
kg=$(readlink -f "$1")
src=$(readlink -f "$2")
n=${3:-100}
nbundle=${4:-1000}
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run KERNELGEN_CONFIG=$work/no-config KERNELGEN_NO_DAEMON=1
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset KERNELGEN_REMOTE KERNELGEN_PREBUILT KERNELGEN_MODE KERNELGEN_LOG
source "$src/tests/remote/nginx.sh"
redis_pid=
trap 'nginx_stop; [[ -n $redis_pid ]] && kill $redis_pid; rm -rf "$work"' EXIT
nginx_start "$work/nginx" || exit 1
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
redis_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

# N specs: causal under N names (each name is its own key and kernel).
mkdir -p "$work/specs"
for i in $(seq "$nbundle"); do
  sed "s/^name: causal$/name: causal_$i/" "$src/specs/causal.yaml" >"$work/specs/causal_$i.yaml"
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ms() { echo "${EPOCHREALTIME/./}"; }  # microseconds (bash 5)

for remote in "http://127.0.0.1:$NGINX_PORT/kg" "redis://127.0.0.1:$port"; do
  kind=${remote%%:*}
  # Fill the remote from one machine's cache.
  KERNELGEN_CACHE_DIR=$work/seed-$kind KERNELGEN_REMOTE=$remote bash -c '
    for i in $(seq '"$n"'); do "'"$kg"'" emit --spec "'"$work"'/specs/causal_$i.yaml" --out-dir "'"$work"'/seed-out" --no-verify >/dev/null || exit 1; done'
  # One whole kernelgen process per hit, each for a spec the local cache lacks (so every one is a
  # remote hit, copied into the local cache). The local cache exists already, as on any machine
  # that built before; a fresh one costs about 200 ms more once (creating the LMDB files).
  KERNELGEN_CACHE_DIR=$work/single-$kind KERNELGEN_REMOTE= "$kg" emit --spec "$work/specs/causal_$nbundle.yaml" \
    --out-dir "$work/single-seed" --no-verify >/dev/null 2>&1
  times=()
  for i in $(seq 20); do
    t0=$(ms)
    KERNELGEN_CACHE_DIR=$work/single-$kind KERNELGEN_REMOTE=$remote "$kg" emit --spec "$work/specs/causal_$i.yaml" \
      --out-dir "$work/single-out" >/dev/null 2>&1 || echo "remote hit failed" >&2
    t1=$(ms)
    times+=($(((t1 - t0) / 1000)))
  done
  echo "$kind: one remote hit, whole kernelgen process: median $(printf '%s\n' "${times[@]}" | median) ms of 20"
  t0=$(ms)
  KERNELGEN_CACHE_DIR=$work/single-$kind "$kg" emit --spec "$work/specs/causal_1.yaml" --out-dir "$work/single-out" >/dev/null 2>&1
  t1=$(ms)
  echo "$kind: the same kernel again, now a local hit: $(((t1 - t0) / 1000)) ms"
  # A build of N specs that all hit the remote: N build steps, two at a time (two cores).
  t0=$(ms)
  seq "$n" | KERNELGEN_CACHE_DIR=$work/build-$kind KERNELGEN_REMOTE=$remote xargs -P 2 -I{} \
    "$kg" emit --spec "$work/specs/causal_{}.yaml" --out-dir "$work/build-out-$kind" >/dev/null 2>&1
  t1=$(ms)
  echo "$kind: $n specs, every one a remote hit, 2 at a time: $(((t1 - t0) / 1000)) ms"
done

# A bundle of N kernels, and its import into an empty cache.
t0=$(ms)
seq "$nbundle" | KERNELGEN_CACHE_DIR=$work/bundle-src xargs -P 2 -I{} \
  "$kg" emit --spec "$work/specs/causal_{}.yaml" --out-dir "$work/bundle-gen" --no-verify >/dev/null 2>&1
t1=$(ms)
echo "generated $nbundle template kernels for the bundle in $(((t1 - t0) / 1000)) ms"
KERNELGEN_CACHE_DIR=$work/bundle-src "$kg" cache export --out "$work/b.kgb" >/dev/null || exit 1
t0=$(ms)
KERNELGEN_CACHE_DIR=$work/bundle-dst "$kg" cache import "$work/b.kgb" || exit 1
t1=$(ms)
echo "import of a bundle of $nbundle kernels ($(stat -c %s "$work/b.kgb") bytes) into an empty cache: $(((t1 - t0) / 1000)) ms"
echo "machine: $(nproc) CPUs, $(uname -r)"

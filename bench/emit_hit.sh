#!/usr/bin/env bash
# Times `kernelgen emit` on a cache hit: the whole process, as a build runs it, per spec.
#   bench/emit_hit.sh [build-dir] [runs]
# Fills a fresh cache with every spec in specs/, then runs each emit `runs` times (default 50)
# into an existing output directory and prints the median and 90th percentile wall time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${2:-50}
kg=$build/wrapper/kernelgen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KERNELGEN_CACHE_DIR=$work/cache

for spec in "$root"/specs/*.yaml; do
  "$kg" emit --spec "$spec" --out-dir "$work/out" >/dev/null
done

python3 - "$kg" "$work/out" "$runs" "$root"/specs/*.yaml <<'PY'
import os, platform, statistics, subprocess, sys, time
kg, out, runs, specs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
rows = []
for spec in specs:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([kg, "emit", "--spec", spec, "--out-dir", out], check=True)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    rows.append((os.path.basename(spec), statistics.median(times), times[int(0.9 * (len(times) - 1))]))
print(f"kernelgen emit, cache hit, whole process, {runs} runs each, {platform.node()} "
      f"({os.cpu_count()} cores)")
print("| spec | median ms | p90 ms |")
print("|---|---|---|")
for name, med, p90 in rows:
    print(f"| {name} | {med:.2f} | {p90:.2f} |")
print(f"| all specs, median of medians | {statistics.median(r[1] for r in rows):.2f} | |")
PY

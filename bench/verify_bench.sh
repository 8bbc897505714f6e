#!/usr/bin/env bash
# Measures the verifier on a GPU machine (issue 3, "Measure"): per spec of specs/,
#   nvcc      seconds to compile the template kernel (a fresh work directory, so nothing is cached)
#   verify    seconds of one verification of the already compiled kernel (compile excluded: the
#             second `kernelgen verify` finds both objects compiled), default settings
#   runner    of which the sandboxed runner process, split into
#   startup   judge start to its first trial (CUDA initialisation, the arena, loading both objects,
#             starting the candidate host), of which
#   host      the candidate host's spawn to ready (its own CUDA initialisation, sandbox, dlopen):
#             with the socket round trip (`roundtrip_ms`), the two-process overhead,
#   trials    the correctness trials and
#   timing    the timing stage (inputs, references, timed runs, the refill check),
# and the kernel's median time / TFLOP/s from the report. Target: verify <= 3 s. Seconds per
# correctness trial and the runner's timing-stage progress lines go to stderr.
#
#   bash bench/verify_bench.sh [kernelgen] [out.tsv]      (from the repository root)
# Needs KERNELGEN_RUNNER (or kg_verify_runner beside kernelgen) and nvcc (KERNELGEN_NVCC or PATH).
set -uo pipefail
kernelgen=${1:-.gpu/bin/kernelgen}
out=${2:-${OUT:-.}/verify_bench.tsv}
specs=${KG_VERIFY_SPECS:-specs/*.yaml}
work=$(mktemp -d "${TMPDIR:-/tmp}/kg-verify-bench.XXXXXX")
export KERNELGEN_VERIFY_DIR=$work
printf 'spec\tnvcc_s\tverify_s\trunner_s\tstartup_s\thost_s\ttrials_s\ttiming_s\tverdict\tmedian_ms\tjudge_ms\troundtrip_ms\ttflops\tregisters\n' >"$out"
for spec in $specs; do
  name=$(basename "$spec" .yaml)
  first=$work/$name.first.json second=$work/$name.second.json
  "$kernelgen" verify --spec "$spec" --template --json >"$first" 2>"$work/$name.first.err"
  "$kernelgen" verify --spec "$spec" --template --json >"$second" 2>"$work/$name.second.err"
  python3 - "$name" "$first" "$second" >>"$out" <<'PY'
import json, sys
name, first, second = sys.argv[1:4]
try:
    a, b = json.load(open(first)), json.load(open(second))
except Exception as e:
    print(f"{name}\t?\t?\t?\t\t\t\t\terror: {e}\t\t\t\t\t"); sys.exit()
t = b.get("timing", {})
ptx = b.get("ptxas") or {}
st = {s["name"]: s.get("seconds", 0) for s in b.get("stages", [])}
host = b['sandbox'].get('candidate_host', {})
print(f"{name}\t{a['compile_seconds']:.2f}\t{b['total_seconds']:.2f}\t{b['sandbox']['seconds']:.2f}\t"
      f"{b['sandbox'].get('startup_seconds', 0):.2f}\t{host.get('startup_seconds', 0):.2f}\t"
      f"{st.get('correctness', 0):.2f}\t{st.get('timing', 0):.2f}\t"
      f"{b['verdict']}\t{t.get('median_ms', 0):.3f}\t{t.get('host_median_ms', 0):.3f}\t{t.get('roundtrip_ms', 0):.3f}\t"
      f"{t.get('tflops', 0):.0f}\t{ptx.get('max_registers', '')}")
PY
  # Where the runner's time went: seconds per correctness trial (stderr: this log).
  python3 - "$name" "$second" >&2 <<'PY' || true
import json, sys
b = json.load(open(sys.argv[2]))
print(sys.argv[1] + ": " + " ".join(f"{t['name']}={t.get('seconds', 0):.3f}" for t in b.get("trials", [])))
print(sys.argv[1] + " rows: " + " ".join(f"{t['name']}={t.get('row_worst_ratio', 0):.2f}" for t in b.get("trials", [])))
host = {k: v for k, v in b["sandbox"].get("candidate_host", {}).items() if k != "output_tail"}
print(sys.argv[1] + " host: " + json.dumps(host, sort_keys=True))
for f in b.get("findings", []):
    print(f"{sys.argv[1]} finding: {f.get('kind')} [{f.get('stage')}] {f.get('message', '')[:300]}")
marks = [l for l in b["sandbox"].get("stderr_tail", "").splitlines() if "timing" in l or "done" in l]
print("\n".join("    " + l for l in marks))
PY
done
tr '\t' ' ' <"$out"  # (column(1) is not on every machine)
python3 - "$out" <<'PY'
import csv, sys, statistics
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["verify_s"] not in ("?", "")]
if rows:
    v = [float(r["verify_s"]) for r in rows]; n = [float(r["nvcc_s"]) for r in rows]
    print(f"verify (compiled): median {statistics.median(v):.2f} s, max {max(v):.2f} s (target <= 3 s); "
          f"nvcc per candidate: median {statistics.median(n):.2f} s, max {max(n):.2f} s")
PY
rm -rf "$work"

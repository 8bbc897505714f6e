#!/usr/bin/env bash
# The closed loop's throughput on one GPU against the scripted model (tests/llm/kg_fake_llm):
# rounds of 8 samples whose answers are real kernels (faster, slower, wrong, broken variants of
# the template kernels, each made unique so that every compile is real), and per round the wall
# time split into model wait, compile and verify, and candidates verified per minute.
#   bash bench/loop_bench.sh <kernelgen> <kg_fake_llm> <source-dir> [rounds (3)] [model delay s (0)] [out.tsv]
# The model delay is how long the scripted model takes per answer (a real R1 answer takes minutes;
# 0 measures KernelGen's own pipeline). Needs a CUDA GPU and nvcc; KG_LOOP_NO_RUN=1 runs the loop
# with --no-run instead (no GPU: model wait and compiles only, nothing verified).
set -uo pipefail
kg=$(readlink -f "$1")
fake=$(readlink -f "$2")
src=$(readlink -f "$3")
rounds=${4:-3}
delay=${5:-0}
tsv=${6:-}
no_run=${KG_LOOP_NO_RUN:-}
[[ -n $no_run || -e /dev/nvidiactl ]] || { echo "loop_bench: no GPU here (KG_LOOP_NO_RUN=1 runs without one)" >&2; exit 77; }
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
export KERNELGEN_CONFIG=$work/no-config KERNELGEN_CACHE_DIR=$work/cache
fake_pid=
trap '[[ -n $fake_pid ]] && kill $fake_pid 2>/dev/null; rm -rf "$work"' EXIT
spec=$src/tests/llm/specs/causal_float.yaml
KERNELGEN_CACHE_DIR=$work/seed "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$work/seed" >/dev/null &&
  KERNELGEN_CACHE_DIR=$work/seed "$kg" emit --no-daemon --no-verify --spec "$src/specs/causal.yaml" \
    --out-dir "$work/seed" >/dev/null || exit 1
sed 's/kg_causal_forward/kg_causal_float_forward/' "$work/seed/causal.cu" >"$work/faster.cu"
sed 's/^  return \(kg_[0-9a-f]*_kernel::kg_flash_fwd\)(args, stream);$/  const cudaError_t first = \1(args, stream);\n  if (first != cudaSuccess) {\n    return first;\n  }\n  return \1(args, stream);/' \
  "$work/seed/causal_float.cu" >"$work/slower.cu"
sed 's/^  return (q_idx >= kv_idx);$/  return (q_idx > kv_idx);/' "$work/faster.cu" >"$work/wrong.cu"
sed 's/^\(}  \/\/ namespace kg_[0-9a-f]*_kernel\)$/this is not C++;\n\1/' "$work/faster.cu" >"$work/broken.cu"
# Each variant must differ from what it was made of: a template that changed shape would leave a
# sed without effect, and the benchmark would time copies.
cmp -s "$work/slower.cu" "$work/seed/causal_float.cu" && { echo "cannot make the slower variant" >&2; exit 1; }
for f in wrong broken; do
  cmp -s "$work/$f.cu" "$work/faster.cu" && { echo "cannot make the $f variant" >&2; exit 1; }
done
for v in faster slower wrong broken; do
  { echo "A kernel."; echo '```cuda'; echo "// loop-bench: $v @NONCE@"; cat "$work/$v.cu"; echo '```'; } >"$work/$v.md"
done
responses=
for v in faster slower wrong faster slower broken wrong slower; do
  responses+="{\"mode\": \"reasoning_content\", \"reasoning\": \"thinking\", \"content_file\": \"$work/$v.md\", \"nonce\": true, \"delay_s\": $delay},"
done
echo "{\"cycle\": true, \"responses\": [${responses%,}]}" >"$work/script.json"
"$fake" --script "$work/script.json" --port-file "$work/port" >"$work/fake.out" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.05; done
export KERNELGEN_LLM_URL=http://127.0.0.1:$(cat "$work/port")/v1 KERNELGEN_LLM_MODEL=scripted KERNELGEN_LLM_API_KEY=bench
t0=$SECONDS
if [[ -n $no_run ]]; then
  "$kg" generate --no-run --samples 8 --rounds "$rounds" --budget 20m --history "$work/history.json" "$spec" 2>&1 | tail -3
  echo "kernelgen generate --no-run: $((SECONDS - t0)) s wall, $(nproc) CPUs, no GPU"
else
  "$kg" generate --samples 8 --rounds "$rounds" --budget 20m "$spec" 2>&1 | tail -5
  echo "kernelgen generate: $((SECONDS - t0)) s wall, $(nproc) CPUs, $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  key=$("$kg" spec check "$spec" | head -1 | awk '{print $3}')
  "$kg" cache show "$key" --history >"$work/history.json" || exit 1
fi
python3 - "$work/history.json" "$tsv" <<'PY'
import json, sys

h = json.load(open(sys.argv[1]))


def union(intervals):
    """Length of the union of [a, b) intervals."""
    total, end = 0.0, None
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


rows = []
print("| round | wall s | model wait s | compile s (busy) | verify s (sum) | %s | candidates/min |"
      % ("verified" if h["run"] else "compiled (no GPU)"))
print("|---|---|---|---|---|---|---|")
all_wall = all_verified = 0
for r in h["rounds"]:
    cs = [c for c in h["candidates"] if c["round"] == r["index"]]
    wall = r["end_s"] - r["start_s"]
    wait = max(c["answered_s"] for c in cs) - r["start_s"]
    comp = union([(c["answered_s"] + c["compile_wait_s"], c["answered_s"] + c["compile_wait_s"] + c["compile_s"]) for c in cs])
    ver = sum(c["verify_s"] for c in cs)
    verified = sum(1 for c in cs if c["verify_s"] > 0 or c["outcome"] == "compiled")
    all_wall += wall
    all_verified += verified
    rate = verified / wall * 60 if wall > 0 else 0
    rows.append((r["index"], wall, wait, comp, ver, verified, rate))
    print("| %d | %.1f | %.1f | %.1f | %.1f | %d of %d | %.1f |" % (r["index"], wall, wait, comp, ver, verified, len(cs), rate))
print("all rounds: %d verified in %.1f s: %.1f candidates verified per minute; template %.3f ms, best %.3f ms (%.2fx)"
      % (all_verified, all_wall, all_verified / all_wall * 60 if all_wall else 0, h["template_ms"], h["best_ms"], h["speedup"]))
if sys.argv[2]:
    with open(sys.argv[2], "w") as f:
        f.write("round\twall_s\tmodel_wait_s\tcompile_busy_s\tverify_s\tverified\tper_min\n")
        for row in rows:
            f.write("%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\n" % row)
PY

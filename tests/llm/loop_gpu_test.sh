#!/usr/bin/env bash
# The closed loop on a GPU, end to end: a CMake build through kernelgen_add_attention(... BUDGET)
# whose kernel is missing from the cache, so kernelgend runs the loop against kg_fake_llm. The
# scripted model answers one round of 8 with: a correct faster kernel, a correct slower one, one
# with wrong numbers, one that does not compile, Triton, prose, a 429 and a streamed <think>. The
# build must end with the faster kernel, every other candidate rejected for its own reason, and
# the API key in nothing kernelgen wrote.
#   tests/llm/loop_gpu_test.sh <kernelgen> <kg_fake_llm> <source-dir>
# Needs a CUDA GPU (exits 77 without one), nvcc (KERNELGEN_NVCC or on PATH), cmake and ninja.
set -uo pipefail
kg=$(readlink -f "$1")
fake=$(readlink -f "$2")
src=$(readlink -f "$3")
[[ -e /dev/nvidiactl ]] || { echo "no GPU here: skipped"; exit 77; }
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
export KERNELGEN_DAEMON=${KERNELGEN_DAEMON:-$(dirname "$kg")/kernelgend}
export KERNELGEN_CONFIG=$work/no-config
export KERNELGEN_CACHE_DIR=$work/cache
unset KERNELGEN_LOG KERNELGEN_NO_DAEMON KERNELGEN_LLM_API_KEY_FILE KERNELGEN_LLM_BUDGET
secret="sk-kgtest-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
fake_pid=
cleanup() {
  [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null
  "$kg" daemon stop >/dev/null 2>&1
  [[ -n ${KG_KEEP:-} ]] && { echo "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"

spec=$src/tests/llm/specs/causal_float.yaml
# The template kernels of the spec (every tile, a double comparison per element) and of plain
# causal (the same mask, empty tiles skipped): the raw material of the scripted answers.
KERNELGEN_CACHE_DIR=$work/seed "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$work/seed" >/dev/null &&
  KERNELGEN_CACHE_DIR=$work/seed "$kg" emit --no-daemon --no-verify --spec "$src/specs/causal.yaml" \
    --out-dir "$work/seed" >/dev/null || { echo "cannot emit the seed kernels" >&2; exit 1; }
a=$work/answers
mkdir -p "$a"
fence() {  # fence PROSE FILE-OR-: MARKER: an answer with one ```cuda block
  echo "$1"
  echo '```cuda'
  echo "// kg-loop-e2e: $3 @NONCE@"
  cat "$2"
  echo '```'
}
sed 's/kg_causal_forward/kg_causal_float_forward/' "$work/seed/causal.cu" >"$work/faster.cu"
# Correct but slower: the spec's own template kernel, launched twice.
sed 's/^  return \(kg_[0-9a-f]*_kernel::kg_flash_fwd\)(args, stream);$/  const cudaError_t first = \1(args, stream);\n  if (first != cudaSuccess) {\n    return first;\n  }\n  return \1(args, stream);/' \
  "$work/seed/causal_float.cu" >"$work/slower.cu"
# Wrong numbers: the diagonal masked out.
sed 's/^  return (q_idx >= kv_idx);$/  return (q_idx > kv_idx);/' "$work/faster.cu" >"$work/wrong.cu"
sed 's/^\(}  \/\/ namespace kg_[0-9a-f]*_kernel\)$/this is not C++;\n\1/' "$work/faster.cu" >"$work/broken.cu"
# Each variant must differ from what it was made of (a template that changed shape would leave a
# sed without effect, and the test would judge copies).
grep -q kg_causal_float_forward "$work/faster.cu" || { echo "cannot make the faster variant" >&2; exit 1; }
for f in wrong broken; do
  cmp -s "$work/$f.cu" "$work/faster.cu" && { echo "cannot make the $f variant" >&2; exit 1; }
done
cmp -s "$work/slower.cu" "$work/seed/causal_float.cu" && { echo "cannot make the slower variant" >&2; exit 1; }
fence "This version skips the tiles the mask empties." "$work/faster.cu" faster >"$a/faster.md"
fence "A safer version." "$work/slower.cu" slower >"$a/slower.md"
fence "Cheaper mask." "$work/wrong.cu" wrong >"$a/wrong.md"
fence "Bigger tiles." "$work/broken.cu" broken >"$a/broken.md"
cat >"$work/script.json" <<JSON
{"log": "$work/llm.log", "cycle": true, "responses": [
  {"mode": "reasoning_content", "reasoning": "The float comparison equals q >= kv; skip empty tiles.", "content_file": "$a/faster.md", "nonce": true},
  {"mode": "reasoning", "reasoning": "Launch twice to be safe.", "content_file": "$a/slower.md", "nonce": true},
  {"mode": "think", "reasoning": "q > kv is cheaper.", "content_file": "$a/wrong.md", "nonce": true, "chunk_bytes": 512},
  {"mode": "reasoning_content", "content_file": "$a/broken.md", "nonce": true},
  {"mode": "reasoning", "content": "\`\`\`python\nimport triton\nimport triton.language as tl\n@triton.jit\ndef attn(Q, K, V): pass\n\`\`\`"},
  {"mode": "think", "reasoning": "Hmm.", "content": "Use shared memory tiles of 128 x 128 and exp2."},
  {"mode": "plain", "content_file": "$a/faster.md", "nonce": true},
  {"status": 429, "retry_after": 1}
]}
JSON
rm -f "$work/port"
"$fake" --script "$work/script.json" --port-file "$work/port" >"$work/fake.out" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.05; done
[[ -s $work/port ]] || { echo "kg_fake_llm did not start: $(cat "$work/fake.out")" >&2; exit 1; }
export KERNELGEN_LLM_URL=http://127.0.0.1:$(cat "$work/port")/v1
export KERNELGEN_LLM_MODEL=fake-r1 KERNELGEN_LLM_API_KEY=$secret KERNELGEN_LLM_SAMPLES=8 KERNELGEN_LLM_ROUNDS=1
export KERNELGEN_LLM_RETRIES=2

t0=$SECONDS
cmake -S "$src/tests/llm/e2e_project" -B "$work/build" -G Ninja -DKERNELGEN_EXECUTABLE="$kg" -DKG_SOURCE_DIR="$src" \
  -DKG_SPEC="$spec" -DKG_BUDGET=10m -DCMAKE_CUDA_COMPILER="${KERNELGEN_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1
rc=$?
check "the build through the loop succeeds" test $rc -eq 0
[[ $rc -eq 0 ]] || tail -40 "$work/build.log" >&2
echo "build with the loop: $((SECONDS - t0)) s"
gen=$work/build/kernelgen/loop_kernels/causal_float.cu
check "the emitted kernel is the faster candidate" grep -q "kg-loop-e2e: faster" "$gen"
key=$("$kg" spec check "$spec" | head -1 | awk '{print $3}')
"$kg" cache show "$key" >"$work/record.txt" 2>&1
check "the record names the loop's generator" grep -q '"generator": "llm:fake-r1:prompt-' "$work/record.txt"
check "the record is verified" grep -q '"verification": "verified"' "$work/record.txt"
"$kg" cache show "$key" --history >"$work/history.json" 2>&1
check "the record keeps the loop's history" test $? -eq 0
python3 - "$work/history.json" <<'PY' >"$work/verdicts.txt" 2>&1
import json, sys
h = json.load(open(sys.argv[1]))
by = {}
for c in h["candidates"]:
    marker = next((m for m in ("faster", "slower", "wrong", "broken") if "kg-loop-e2e: " + m in c["source"]), "none")
    by.setdefault(marker, []).append(c["outcome"])
best = h["candidates"][h["best"]] if h["best"] >= 0 else None
print("best", "kg-loop-e2e: faster" in best["source"] if best else False)
for m in sorted(by):
    print(m, " ".join(sorted(by[m])))
print("speedup %.2f template %.3f ms best %.3f ms" % (h["speedup"], h["template_ms"], h["best_ms"]))
for r in h["rounds"]:
    cs = [c for c in h["candidates"] if c["round"] == r["index"]]
    wall = r["end_s"] - r["start_s"]
    answered = max(c["answered_s"] for c in cs) - r["start_s"]
    verified = sum(1 for c in cs if c["verify_s"] > 0)
    print("round %d: wall %.1f s, model wait %.1f s (last answer), compile %.1f s (sum), verify %.1f s (sum), %d verified"
          % (r["index"], wall, answered, r["compile_s"], r["verify_s"], verified))
PY
cat "$work/verdicts.txt"
check "the faster kernel is the best" grep -q "^best True" "$work/verdicts.txt"
check "faster candidates passed" grep -q "^faster .*pass" "$work/verdicts.txt"
check "the slower kernel passed but was not chosen" grep -q "^slower pass$" "$work/verdicts.txt"
check "wrong numbers were rejected" grep -q "^wrong rejected$" "$work/verdicts.txt"
check "the broken kernel was a compile error" grep -q "^broken compile_error$" "$work/verdicts.txt"
check "Triton and prose had no code" grep -q "^none .*no_code no_code" "$work/verdicts.txt"
grep -q "wrong_output\|wrong_lse\|row_error" "$work/history.json"
check "the wrong kernel's finding is a correctness one" test $? -eq 0
"$kg" report "$key" --out "$work/report.html" >/dev/null 2>&1
check "kernelgen report writes the page" test -s "$work/report.html"
# The second build is a cache hit: nothing asks the model again.
before=$(wc -l <"$work/llm.log")
rm -rf "$work/build/kernelgen"
cmake --build "$work/build" >>"$work/build.log" 2>&1
check "a rebuild is served from the cache" test "$(wc -l <"$work/llm.log")" -eq "$before"
check "the rebuild emits the same kernel" grep -q "kg-loop-e2e: faster" "$gen"
"$kg" daemon stop >/dev/null 2>&1
hits=$(grep -rl --binary-files=text -F "$secret" "$KERNELGEN_CACHE_DIR" "$XDG_RUNTIME_DIR" "$work/build" "$work/report.html" \
  "$work/history.json" 2>/dev/null || true)
check "the API key is in nothing kernelgen wrote" test -z "$hits"
[[ -z $hits ]] || echo "  the key was found in: $hits" >&2
[[ -n ${OUT:-} ]] && cp "$work/history.json" "$OUT/loop_e2e_history.json" 2>/dev/null
echo "loop_gpu_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

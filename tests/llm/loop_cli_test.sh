#!/usr/bin/env bash
# The closed loop through the real programs on a machine without a GPU: kernelgen generate, and
# kernelgend running the loop on a miss, against kg_fake_llm (a loopback OpenAI-compatible server
# with scripted answers). Every fault the server can script must leave the daemon serving and the
# build with the template kernel; the API key must appear in nothing kernelgen writes.
#   tests/llm/loop_cli_test.sh <kernelgen> <kg_fake_llm> <source-dir> [section...]
# Sections (default: all): config nogpu norun faults dead killed secret.
# `norun` compiles candidates with nvcc (KERNELGEN_NVCC or nvcc on PATH) and is skipped without one.
set -uo pipefail
kg=$(readlink -f "$1")
fake=$(readlink -f "$2")
src=$(readlink -f "$3")
shift 3
sections=${*:-config nogpu norun faults dead killed secret}
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
export KERNELGEN_DAEMON=$(dirname "$kg")/kernelgend
export KERNELGEN_IDLE_TIMEOUT=300
export KERNELGEN_CONFIG=$work/no-config
unset KERNELGEN_LOG KERNELGEN_NO_DAEMON KERNELGEN_CACHE_DIR KERNELGEN_LLM_URL KERNELGEN_LLM_MODEL \
  KERNELGEN_LLM_API_KEY KERNELGEN_LLM_API_KEY_FILE KERNELGEN_LLM_BUDGET KERNELGEN_LLM_SAMPLES KERNELGEN_LLM_ROUNDS
# A key no part of kernelgen may ever write down.
secret="sk-kgtest-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
fake_pids=()
caches=()
cleanup() {
  for p in "${fake_pids[@]}"; do kill "$p" 2>/dev/null; done
  for c in "${caches[@]}"; do KERNELGEN_CACHE_DIR=$c "$kg" daemon stop >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
# start_fake NAME SCRIPT: starts kg_fake_llm on a free loopback port; sets KERNELGEN_LLM_URL.
start_fake() {
  local name=$1 script=$2
  rm -f "$work/$name.port"
  "$fake" --script "$script" --port-file "$work/$name.port" >"$work/$name.out" 2>&1 &
  fake_pids+=($!)
  fake_pid=$!
  for _ in $(seq 100); do [[ -s $work/$name.port ]] && break; sleep 0.05; done
  [[ -s $work/$name.port ]] || { echo "  kg_fake_llm did not start: $(cat "$work/$name.out")" >&2; return 1; }
  export KERNELGEN_LLM_URL=http://127.0.0.1:$(cat "$work/$name.port")/v1
}
requests_in() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }

# A spec the tests generate; its template kernel and a broken variant for the scripted answers.
spec=$src/specs/causal.yaml
answers=$work/answers
mkdir -p "$answers"
KERNELGEN_CACHE_DIR=$work/seed "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$work/seed-gen" \
  >/dev/null 2>&1 || { echo "cannot emit the seed kernel" >&2; exit 1; }
{ echo "Here is a faster kernel."; echo '```cuda'; echo "// @NONCE@"; cat "$work/seed-gen/causal.cu"; echo '```'; } \
  >"$answers/template.md"
{ echo "Fixed the tiles."; echo '```cuda'; echo "// @NONCE@"; sed 's/^\(}  \/\/ namespace kg_[0-9a-f]*_kernel\)$/this is not C++;\n\1/' \
  "$work/seed-gen/causal.cu"; echo '```'; } >"$answers/broken.md"
grep -q "this is not C++" "$answers/broken.md" || { echo "cannot make the broken variant" >&2; exit 1; }

if [[ " $sections " == *" config "* ]]; then
  use_cache config
  out=$("$kg" generate "$spec" 2>&1)
  check "generate without an endpoint fails" test $? -eq 1
  check "generate without an endpoint says what to set" contains "$out" "KERNELGEN_LLM_URL"
  out=$(KERNELGEN_LLM_URL=ftp://example.invalid/v1 "$kg" generate --no-run "$spec" 2>&1)
  check "a bad URL is refused" test $? -eq 1
  check "a bad URL names the setting" contains "$out" "llm_url"
  out=$(KERNELGEN_LLM_URL=http://127.0.0.1:9/v1 KERNELGEN_LLM_API_KEY_FILE=$work/missing-key "$kg" generate --no-run "$spec" 2>&1)
  check "a missing key file is an error" test $? -eq 1
  check "a missing key file is named" contains "$out" "missing-key"
  out=$("$kg" generate --budget soon "$spec" 2>&1)
  check "a bad budget is a usage error" test $? -eq 2
  check "a bad budget says what a duration is" contains "$out" "duration"
  out=$("$kg" generate --help 2>&1)
  check "generate --help teaches the endpoint settings" contains "$out" "KERNELGEN_LLM_API_KEY_FILE"
  out=$(KERNELGEN_LLM_API_KEY=$secret "$kg" config show 2>&1)
  check "config show hides the key" contains "$out" "llm_api_key = (set, hidden)"
  check "config show does not print the key" test "${out/$secret/}" == "$out"
fi

if [[ " $sections " == *" nogpu "* ]]; then
  if [[ -e /dev/nvidiactl ]]; then
    echo "nogpu: skipped (this machine has a GPU)"
  else
    use_cache nogpu
    out=$(KERNELGEN_LLM_URL=http://127.0.0.1:9/v1 "$kg" generate "$spec" 2>&1)
    check "generate without a GPU exits 77" test $? -eq 77
    check "generate without a GPU points to --no-run" contains "$out" "--no-run"
  fi
fi

if [[ " $sections " == *" norun "* ]]; then
  nvcc=${KERNELGEN_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  if [[ ! -x $nvcc ]]; then
    echo "norun: skipped (no nvcc)"
  else
    use_cache norun
    cat >"$work/norun.json" <<JSON
{"log": "$work/norun.log", "cycle": true, "responses": [
  {"mode": "reasoning_content", "reasoning": "Tiles of 128 rows; exp2 with log2(e).", "content_file": "$answers/template.md", "nonce": true},
  {"mode": "think", "reasoning": "Try a bigger tile.", "content_file": "$answers/broken.md", "nonce": true},
  {"mode": "reasoning", "reasoning": "Python is easier.", "content": "\`\`\`python\nimport triton\n@triton.jit\ndef k(): pass\n\`\`\`"}
]}
JSON
    start_fake norun "$work/norun.json" || exit 1
    out=$(cd "$work" && KERNELGEN_NVCC=$nvcc KERNELGEN_LLM_API_KEY=$secret "$kg" generate --no-run --samples 3 --rounds 1 \
      --history "$work/norun-history.json" "$spec" 2>&1)
    rc=$?
    check "generate --no-run succeeds" test $rc -eq 0
    [[ $rc -eq 0 ]] || echo "$out" >&2
    check "generate --no-run says nothing was cached" contains "$out" "nothing cached"
    outcomes=$(python3 -c "
import json, sys
h = json.load(open(sys.argv[1]))
print(' '.join(sorted(c['outcome'] for c in h['candidates'])), h['run'], h['prompt_version'] != '')" "$work/norun-history.json" 2>&1)
    check "--no-run: one compiled, one compile error, one without code" test "$outcomes" == "compile_error compiled no_code False True"
    [[ $outcomes == "compile_error compiled no_code False True" ]] || echo "  outcomes: $outcomes" >&2
    check "--no-run caches nothing" test "$(KERNELGEN_CACHE_DIR=$work/norun "$kg" cache ls 2>/dev/null | grep -c causal)" -eq 0
    check "the server saw the bearer key" grep -q "Bearer $secret" "$work/norun.log"
    check "the history does not hold the key" bash -c "! grep -q '$secret' '$work/norun-history.json'"
    check "the history holds the prompt's Python mask" grep -q "def mask_mod" "$work/norun-history.json"
  fi
fi

# The daemon runs the loop on a miss; KERNELGEN_TEST_LOOP_NO_RUN makes its loop compile-only, as
# on this machine there is no GPU to verify on. Every answer is a fault.
if [[ " $sections " == *" faults "* ]]; then
  use_cache faults
  cat >"$work/faults.json" <<JSON
{"log": "$work/faults.log", "cycle": true, "responses": [
  {"mode": "reasoning_content", "content": "I would tile it, but I will not write the code."},
  {"status": 429, "retry_after": 1},
  {"status": 500},
  {"mode": "reasoning", "content": "slow", "stall_after_chunks": 1, "stall_s": 4},
  {"mode": "think", "content": "cut short", "truncate_after_chunks": 1},
  {"mode": "reasoning_content", "invalid_json": true},
  {"mode": "reasoning_content", "empty": true},
  {"mode": "think", "content": "\`\`\`python\nimport torch\ndef attn(q, k, v): return torch.softmax(q @ k.T, -1) @ v\n\`\`\`"}
]}
JSON
  start_fake faults "$work/faults.json" || exit 1
  out=$(KERNELGEN_LLM_API_KEY=$secret KERNELGEN_TEST_LOOP_NO_RUN=1 KERNELGEN_LLM_SAMPLES=4 KERNELGEN_LLM_ROUNDS=2 \
        KERNELGEN_LLM_RETRIES=1 KERNELGEN_LLM_STALL_TIMEOUT=1 KERNELGEN_LLM_TIMEOUT=10 \
        "$kg" emit --spec "$spec" --out-dir "$work/faults-gen" --budget 2m 2>&1)
  rc=$?
  check "a build through every fault succeeds" test $rc -eq 0
  [[ $rc -eq 0 ]] || echo "$out" >&2
  check "the template kernel stands" grep -q "generator tmpl-" "$work/faults-gen/causal.cu"
  check "the model was asked (2 rounds of 4, with retries)" test "$(requests_in "$work/faults.log")" -ge 8
  check "the daemon still serves" bash -c "\"$kg\" daemon status >/dev/null"
  out=$("$kg" emit --spec "$spec" --out-dir "$work/faults-gen" 2>&1)
  check "the next build is a cache hit" test $? -eq 0
  key=$("$kg" spec check "$spec" | head -1 | awk '{print $3}')
  history=$("$kg" cache show "$key" --history 2>&1)
  [[ -n ${KG_VERBOSE:-} ]] && python3 -c 'import json, sys; [print(c["outcome"], c["detail"]) for c in json.loads(sys.stdin.read())["candidates"]]' <<<"$history"
  check "the record keeps the loop's history" contains "$history" '"stop_reason": "rounds"'
  n=$(python3 -c "import json,sys; h=json.loads(sys.stdin.read()); print(len(h['candidates']), all(c['outcome'] in ('no_code','llm_error') for c in h['candidates']))" <<<"$history" 2>&1)
  check "the history has 8 candidates, each a fault" test "$n" == "8 True"
  [[ $n == "8 True" ]] || echo "  history: $n" >&2
fi

if [[ " $sections " == *" dead "* ]]; then
  use_cache dead
  out=$(KERNELGEN_LLM_URL=http://127.0.0.1:9/v1 KERNELGEN_LLM_API_KEY=$secret KERNELGEN_TEST_LOOP_NO_RUN=1 \
        KERNELGEN_LLM_SAMPLES=2 KERNELGEN_LLM_RETRIES=0 "$kg" emit --spec "$spec" --out-dir "$work/dead-gen" --budget 1m 2>&1)
  check "an endpoint that refuses connections leaves the template" test $? -eq 0
  check "dead: the template kernel stands" grep -q "generator tmpl-" "$work/dead-gen/causal.cu"
fi

if [[ " $sections " == *" killed "* ]]; then
  use_cache killed
  cat >"$work/killed.json" <<JSON
{"log": "$work/killed.log", "responses": [{"mode": "reasoning_content", "content_file": "$answers/template.md", "delay_s": 30}]}
JSON
  start_fake killed "$work/killed.json" || exit 1
  KERNELGEN_LLM_API_KEY=$secret KERNELGEN_TEST_LOOP_NO_RUN=1 KERNELGEN_LLM_SAMPLES=2 KERNELGEN_LLM_RETRIES=0 \
    "$kg" emit --spec "$spec" --out-dir "$work/killed-gen" --budget 1m >"$work/killed.emit" 2>&1 &
  emit_pid=$!
  for _ in $(seq 200); do [[ $(requests_in "$work/killed.log") -ge 1 ]] && break; sleep 0.1; done
  kill "$fake_pid"
  wait "$emit_pid"
  check "the server dying mid-answer leaves the template" test $? -eq 0
  check "killed: the template kernel stands" grep -q "generator tmpl-" "$work/killed-gen/causal.cu"
  check "killed: the daemon still serves" bash -c "\"$kg\" daemon status >/dev/null"
fi

if [[ " $sections " == *" secret "* ]]; then
  # Everything kernelgen wrote: caches (LMDB files, verifier work dirs), daemon logs, outputs,
  # histories. The fake server's own logs are left out: they record the header on purpose.
  hits=$(grep -rl --binary-files=text -F "$secret" "$work" 2>/dev/null | grep -v -E '\.(log|out)$|/answers/|\.json$' || true)
  hits+=$(grep -l --binary-files=text -F "$secret" "$work"/*history*.json 2>/dev/null || true)
  hits+=$(grep -rl --binary-files=text -F "$secret" "$XDG_RUNTIME_DIR" 2>/dev/null || true)
  check "the API key is in nothing kernelgen wrote" test -z "$hits"
  [[ -z $hits ]] || echo "  the key was found in: $hits" >&2
fi

echo "loop_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# The lockfile and the modes through the real `kernelgen` (docs/design.md §7): `kernelgen lock`,
# `emit --lockfile` on every path (in process, cache hit, through the daemon), and emit --mode
# offline | read_only | recache. Kernels come from the template generator without verification,
# so no GPU is needed.
#   tests/cli/lock_test.sh <kernelgen> <source-dir>
set -uo pipefail
kg=$(realpath "$1")
src=$2
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
trap 'KERNELGEN_CACHE_DIR=$work/cache "$kg" daemon stop >/dev/null 2>&1; rm -rf "$work"' EXIT
export KERNELGEN_CACHE_DIR=$work/cache
unset KERNELGEN_LOG KERNELGEN_NO_DAEMON KERNELGEN_MODE KERNELGEN_CONFIG
export KERNELGEN_CONFIG=$work/no-such.conf

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
run() {  # run EXPECTED_EXIT CMD...: captures stdout/stderr in $out/$err; another exit code fails the suite
  local want=$1
  shift
  "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  out=$(cat "$work/stdout")
  err=$(cat "$work/stderr")
  if [[ $rc != "$want" ]]; then
    echo "FAIL: '$*' exited $rc, expected $want; stderr: $err" >&2
    failed=$((failed + 1))
    return 1
  fi
}
json_field() {  # json_field FILE PYTHON-EXPR: prints the expression over the parsed file `j`
  python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"
}
no_daemon_ran() {  # no socket, lock or log of a daemon in the runtime directory
  [[ -z $(find "$XDG_RUNTIME_DIR" -mindepth 1 -print -quit) ]] ||
    { echo "  the runtime directory holds: $(find "$XDG_RUNTIME_DIR" -mindepth 1)" >&2; return 1; }
}

proj=$work/proj
mkdir -p "$proj/specs"
cp "$src/specs/causal.yaml" "$src/specs/alibi_causal.yaml" "$src/specs/full.yaml" "$proj/specs/"
lock=$proj/kernelgen.lock
spec=$proj/specs/causal.yaml
gen=$work/gen

# --- kernelgen lock -------------------------------------------------------------------------
run 1 bash -c "cd '$proj' && '$kg' lock specs/causal.yaml"
check "lock of an uncached spec fails naming the spec and key" contains "$err" "specs/causal.yaml: causal (key "
check "... and says to build first" contains "$err" "is not in the cache $KERNELGEN_CACHE_DIR: build it first (\`kernelgen emit --spec specs/causal.yaml\`, or the build that uses it), then lock it"
check "... and writes no lockfile" test ! -e "$lock"

run 0 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen"
check "emit --no-daemon --no-verify fills the cache" test -s "$gen/causal.cu"
key=$("$kg" spec check --json "$spec" | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['key'])")
digest=$("$kg" cache show "$key" | python3 -c "import json, sys; print(json.load(sys.stdin)['source_digest'])")

run 0 bash -c "cd '$proj' && '$kg' lock specs/causal.yaml"
check "lock writes ./kernelgen.lock" test -s "$lock"
check "lock says what it did" contains "$out" "specs/causal.yaml: causal sm_90a key $key: added"
check "the entry: spec relative to the lockfile, name, arch, key, kernel digest" test \
  "$(json_field "$lock" "(j['format'], [(e['spec'], e['name'], e['arch'], e['key'], e['kernel'], e['generator'], e['verification']) for e in j['entries']])")" \
  = "(1, [('specs/causal.yaml', 'causal', 'sm_90a', '$key', '$digest', 'tmpl-16', 'unverified')])"
check "the lockfile is 2-space indented JSON ending in a newline" \
  bash -c "[[ \$(sed -n 2p '$lock') == '  \"about\": '* && \$(tail -c1 '$lock' | od -An -c | tr -d ' ') == '\\n' ]]"
cp "$lock" "$work/lock.1"
touch -d 2020-01-01 "$lock"
run 0 "$kg" lock --lockfile "$lock" "$spec"
check "locking again with absolute paths changes nothing" cmp -s "$lock" "$work/lock.1"
check "... not even the time stamp" bash -c "[[ \$(stat -c %Y '$lock') == \$(date -d 2020-01-01 +%s) ]]"
check "... and says so" contains "$out" "unchanged"

# --- emit --lockfile ------------------------------------------------------------------------
run 0 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "emit --lockfile passes for the locked kernel (in process)" test $? = 0
run 0 bash -c "cd '$work' && '$kg' emit --spec proj/specs/causal.yaml --out-dir gen --lockfile proj/kernelgen.lock"
check "emit --lockfile passes on the hit path, paths relative to another directory" test $? = 0
check "a hit never starts a daemon" no_daemon_ran

printf '# a comment changes nothing\n' >>"$spec"
run 0 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "a comment-only change keeps the key: emit --lockfile passes" test $? = 0

cp "$gen/causal.cu" "$work/causal.cu.locked"
sed -i 's/^mask_mod: .*/mask_mod: q_idx > kv_idx/' "$spec"
newkey=$("$kg" spec check --json "$spec" | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['key'])")
check "a semantic change changes the key" test "$newkey" != "$key"
run 1 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "a semantic change fails emit --lockfile (exit 1)" test $? = 0
check "... saying which keys differ" contains "$err" "$spec: causal resolves to key $newkey, but $lock locks it at key $key: the spec or KernelGen changed"
check "... and how to accept it" contains "$err" "If the change is intended, accept it with \`kernelgen lock --update --lockfile $lock $spec\`"
check "... and the outputs are not written" cmp -s "$gen/causal.cu" "$work/causal.cu.locked"
run 1 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "the hit path refuses it too (the kernel is now cached)" contains "$err" "resolves to key $newkey, but $lock locks it at key $key"
check "... without a daemon" no_daemon_ran

# The daemon path: a spec the cache lacks is generated by kernelgend, then refused.
cp "$src/specs/softcap_causal.yaml" "$proj/specs/"
run 0 "$kg" emit --no-daemon --no-verify --spec "$proj/specs/softcap_causal.yaml" --out-dir "$gen"
run 0 "$kg" lock --lockfile "$lock" "$proj/specs/softcap_causal.yaml"
sed -i 's/^dtype: .*/dtype: fp16/' "$proj/specs/softcap_causal.yaml"
run 1 "$kg" emit --no-verify --spec "$proj/specs/softcap_causal.yaml" --out-dir "$gen" --lockfile "$lock"
check "through the daemon: generated, then refused" contains "$err" "softcap_causal resolves to key"
check "... the daemon generated it" bash -c "'$kg' daemon status --json | python3 -c 'import json, sys; assert json.load(sys.stdin)[\"stats\"][\"generations\"] == 1'"
"$kg" daemon stop >/dev/null 2>&1
sed -i 's/^dtype: .*/dtype: bf16/' "$proj/specs/softcap_causal.yaml"
rm -rf "$XDG_RUNTIME_DIR"/*

run 1 "$kg" lock --lockfile "$lock" "$spec"
check "lock without --update refuses a changed spec" contains "$err" "locks causal at key $key, kernel $digest; it now resolves to key $newkey"
check "... says how to accept it" contains "$err" "to accept the change, run \`kernelgen lock --update --lockfile $lock $spec\`"
check "... and leaves the lockfile alone" test "$(json_field "$lock" "[e['key'] for e in j['entries'] if e['name'] == 'causal']")" = "['$key']"
run 0 "$kg" lock --update --lockfile "$lock" "$spec"
check "lock --update accepts it" contains "$out" "updated (key $key -> $newkey)"
check "... keeping the other entries" test "$(json_field "$lock" "[e['spec'] for e in j['entries']]")" = "['specs/causal.yaml', 'specs/softcap_causal.yaml']"
run 0 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "after lock --update, emit --lockfile passes" test $? = 0

# Tampering: another kernel under the same key (a lockfile entry with another kernel digest).
python3 - "$lock" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for e in j["entries"]:
    if e["name"] == "causal":
        e["kernel"] = "0123456789abcdef0123456789abcdef"
open(sys.argv[1], "w").write(json.dumps(j, indent=2, sort_keys=True) + "\n")
PY
cp "$gen/causal.cu" "$work/causal.cu.before"
rm "$gen/causal.cu"
run 1 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "another kernel under the locked key fails" contains "$err" "causal (key $newkey) is locked to kernel 0123456789abcdef0123456789abcdef in $lock, but the cache holds kernel"
check "... saying the cache holds a different kernel for the same key" contains "$err" "the cache holds a different kernel for the same key"
check "... and writes no .cu" test ! -e "$gen/causal.cu"
run 1 "$kg" emit --no-daemon --no-verify --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "... in process too" contains "$err" "is locked to kernel 0123456789abcdef0123456789abcdef"
run 1 "$kg" lock --lockfile "$lock" "$spec"
check "lock without --update refuses it" contains "$err" "(the cache holds a different kernel for the same key)"
run 0 "$kg" lock --update --lockfile "$lock" "$spec"
check "lock --update restores the entry" contains "$out" "updated (kernel 0123456789abcdef0123456789abcdef -> "
run 0 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$lock"
check "... and emit passes" cmp -s "$gen/causal.cu" "$work/causal.cu.before"

# Not locked, and broken lockfiles.
run 1 "$kg" emit --no-daemon --no-verify --spec "$proj/specs/alibi_causal.yaml" --out-dir "$gen" --lockfile "$lock"
check "a spec without an entry fails as not locked" contains "$err" "alibi_causal is not locked in $lock"
check "... saying how to lock it" contains "$err" "lock it with \`kernelgen lock --lockfile $lock $proj/specs/alibi_causal.yaml\`"
check "... and writes nothing" test ! -e "$gen/alibi_causal.cu"
printf '{\n  "format": 1,\n  "entries": [\n    {"spec": 7}\n  ]\n}\n' >"$work/bad.lock"
run 1 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$work/bad.lock"
check "a damaged lockfile is an error at its line and column" contains "$err" "$work/bad.lock:4:5: entry 1 lacks the field \"arch\""
printf '{"format": 2, "entries": []}\n' >"$work/future.lock"
run 1 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$work/future.lock"
check "an unknown format version is refused" contains "$err" "$work/future.lock:1:12: lockfile format 2 is not supported"
run 1 "$kg" lock --lockfile "$work/future.lock" "$spec"
check "lock refuses to overwrite a lockfile it cannot read" contains "$err" "lockfile format 2 is not supported"
run 1 "$kg" emit --spec "$spec" --out-dir "$gen" --lockfile "$work/none.lock"
check "a missing lockfile is an error" contains "$err" "cannot read the lockfile $work/none.lock: No such file or directory (create it with \`kernelgen lock"

# --- modes ----------------------------------------------------------------------------------
full=$proj/specs/full.yaml  # never emitted so far: not in the cache
full_key=$("$kg" spec check --json "$full" | python3 -c "import json, sys; print(json.load(sys.stdin)[0]['key'])")
rm -rf "$XDG_RUNTIME_DIR"/*
run 1 "$kg" emit --spec "$full" --out-dir "$gen" --mode offline
check "offline: a miss fails (exit 1) naming spec, name and key" contains "$err" "$full: full (key $full_key) is not in the cache and the mode is offline: "
check "... and how to produce it" contains "$err" "produce it with \`kernelgen emit --spec $full\` (online, on a machine with a GPU), or import a bundle with \`kernelgen cache import FILE\`"
check "... without generating" test ! -e "$gen/full.cu"
check "... or starting a daemon" no_daemon_ran
run 1 env KERNELGEN_MODE=OFFLINE KERNELGEN_NO_DAEMON=1 "$kg" emit --spec "$full" --out-dir "$gen"
check "offline from KERNELGEN_MODE (any case) beats --no-daemon" contains "$err" "is not in the cache and the mode is offline"
rm -f "$gen/causal.cu"
run 0 env KERNELGEN_LOG=info "$kg" emit --spec "$spec" --out-dir "$gen" --mode offline --lockfile "$lock"
check "offline: a hit works" contains "$err" "causal: cache hit"
check "... writes the kernel" test -s "$gen/causal.cu"
check "... with no daemon socket in \$XDG_RUNTIME_DIR" no_daemon_ran
run 0 env KERNELGEN_MODE=offline "$kg" config show
check "config show names the mode and where it came from" contains "$out" "(environment: KERNELGEN_MODE) mode = offline"
run 2 env KERNELGEN_MODE=sometimes "$kg" emit --spec "$spec" --out-dir "$gen"
check "a bad KERNELGEN_MODE is a usage error" contains "$err" "KERNELGEN_MODE: expected online, offline, read_only or recache, found 'sometimes'"
run 2 "$kg" emit --spec "$spec" --out-dir "$gen" --mode sometimes
check "a bad --mode is a usage error" contains "$err" "expected online, offline, read_only or recache, found 'sometimes'"

"$kg" cache ls >"$work/ls.before"
run 0 env KERNELGEN_LOG=info "$kg" emit --no-verify --spec "$full" --out-dir "$work/ro" --mode read-only
check "read_only: a miss is generated" contains "$err" "full: generated (mode read_only: not stored)"
check "... into the out dir" test -s "$work/ro/full.cu" -a -s "$work/ro/full.h"
"$kg" cache ls >"$work/ls.after"
check "... and the cache is unchanged (cache ls)" cmp -s "$work/ls.before" "$work/ls.after"
check "... without a daemon" no_daemon_ran
run 0 env KERNELGEN_LOG=info "$kg" emit --spec "$spec" --out-dir "$work/ro" --mode read_only
check "read_only: a hit is served" contains "$err" "causal: cache hit"
run 0 env KERNELGEN_LOG=info KERNELGEN_CACHE_DIR="$work/nocache" "$kg" emit --no-verify --spec "$full" --out-dir "$work/ro2" --mode read_only
check "read_only without any cache generates" test -s "$work/ro2/full.cu"
check "... and creates no cache" test ! -e "$work/nocache"
run 1 "$kg" emit --no-verify --spec "$full" --out-dir "$work/ro3" --mode read_only --lockfile "$lock"
check "read_only checks the lockfile too" contains "$err" "full is not locked in $lock"
check "... before writing" test ! -e "$work/ro3/full.cu"

count_before=$("$kg" cache ls | wc -l)
rm -f "$gen/causal.cu"
run 0 env KERNELGEN_LOG=info "$kg" emit --no-verify --spec "$spec" --out-dir "$gen" --mode recache --lockfile "$lock"
check "recache regenerates although the kernel is cached" contains "$err" "causal: generated again (mode recache), replacing the cached kernel, key $newkey"
check "... lacks a cache hit" lacks "$err" "cache hit"
check "... writes the outputs (the template kernel is the locked one)" cmp -s "$gen/causal.cu" "$work/causal.cu.before"
check "... replaces the record rather than adding one" test "$("$kg" cache ls | wc -l)" = "$count_before"
check "... without a daemon" no_daemon_ran

# --- help ---------------------------------------------------------------------------------------
run 0 "$kg" lock --help
check "lock --help explains --update" contains "$out" "unless --update is given"
run 0 "$kg" emit --help
check "emit --help documents the modes" contains "$out" "read_only  hits from the cache; a miss is generated in this process"
check "emit --help documents --lockfile" contains "$out" "--lockfile"

echo "lock tests: $passed passed, $failed failed"
[[ $failed == 0 ]]

# The assertions the shell suites share. Source it after setting `work` (the suite's scratch
# directory); it starts the counters:
#   source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
# A suite ends by printing $passed and $failed and exiting non-zero when $failed > 0.

passed=0
failed=0

# check NAME COMMAND...: passes when COMMAND exits 0; a failure names NAME on stderr.
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name" >&2
  fi
}

# contains TEXT PART / lacks TEXT PART: whether TEXT holds PART, saying what it held when not.
contains() { [[ $1 == *"$2"* ]] || { echo "  expected '$2' in: $1" >&2; return 1; }; }
lacks() { [[ $1 != *"$2"* ]] || { echo "  did not expect '$2' in: $1" >&2; return 1; }; }

# use_cache NAME: a fresh cache directory under $work for the next steps, remembered in the
# suite's `caches` array (its exit trap stops the daemon of each).
use_cache() {
  export KERNELGEN_CACHE_DIR=$work/$1
  caches+=("$KERNELGEN_CACHE_DIR")
}

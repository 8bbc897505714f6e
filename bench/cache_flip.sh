#!/usr/bin/env bash
# Byte-flip campaign against the local cache: a damaged cache must never crash, hang or serve a
# wrong kernel.
#
#   bench/cache_flip.sh KERNELGEN SOURCE_DIR [TRIALS=1000] [SEED=1]
#
# Builds a cache with the real kernelgen (every spec in SOURCE_DIR/specs and KG_FLIP_VARIANTS=3
# renamed copies of each, template kernels, --no-daemon --no-verify) and keeps the pristine
# emission of each spec. Then, per trial, on a
# fresh copy of that cache: damages it one way (flips 1-8 bytes anywhere in data.mdb, anywhere
# in its B-tree pages, in page headers, in the meta pages or in lock.mdb; truncates data.mdb;
# zero-fills one of its pages),
# then runs, under a timeout, for one spec:
#   hit  `kernelgen emit` (the read-only hit path; no daemon can start: a miss exits non-zero)
#   gen  `kernelgen emit --no-daemon --no-verify` (reads, regenerates on a miss, stores)
# and checks: no signal death (crash), no timeout (hang), every .cu/.h written identical to the
# pristine emission (wrong kernel), and gen succeeds (error). Prints the counts; exits 1 when
# any crash, hang, wrong kernel or gen error happened. KG_FLIP_KEEP=DIR keeps a copy of each
# trial that crashed there.
set -u

KG=${1:?usage: cache_flip.sh KERNELGEN SOURCE_DIR [TRIALS] [SEED]}
SRC=${2:?usage: cache_flip.sh KERNELGEN SOURCE_DIR [TRIALS] [SEED]}
TRIALS=${3:-1000}
RANDOM=${4:-1}
KG=$(cd "$(dirname "$KG")" && pwd)/$(basename "$KG")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kg-cache-flip-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -m 700 "$WORK/run"
export XDG_RUNTIME_DIR="$WORK/run" KERNELGEN_DAEMON=/nonexistent KERNELGEN_LOG=warn
unset KERNELGEN_CACHE_DIR KERNELGEN_NO_DAEMON

# Every spec of the project, and VARIANTS renamed copies of each (another name is another key):
# enough records and blobs for B-trees with branch pages.
VARIANTS=${KG_FLIP_VARIANTS:-3}
mkdir -p "$WORK/specs"
for spec in "$SRC"/specs/*.yaml; do
  base=$(basename "$spec" .yaml)
  cp "$spec" "$WORK/specs/$base.yaml"
  for ((v = 1; v <= VARIANTS; v++)); do
    sed "s/^name: .*/name: ${base}_v$v/" "$spec" >"$WORK/specs/${base}_v$v.yaml"
  done
done
mapfile -t SPECS < <(ls "$WORK"/specs/*.yaml)
PRISTINE="$WORK/pristine"
for spec in "${SPECS[@]}"; do
  name=$(basename "$spec" .yaml)
  if ! "$KG" --cache-dir "$PRISTINE" emit --no-daemon --no-verify --spec "$spec" \
       --out-dir "$WORK/expect/$name" 2>"$WORK/populate.err"; then
    echo "cache_flip: cannot populate the cache with $spec:" >&2
    cat "$WORK/populate.err" >&2
    exit 2
  fi
done
DATA_SIZE=$(stat -c %s "$PRISTINE/data.mdb")
PAGES=$((DATA_SIZE / 4096))
# The B-tree pages (branch 0x01, leaf 0x02 in the page header's flags): where LMDB follows
# page numbers and node offsets. Most other pages hold blob bytes.
TREE_PAGES=()
for ((p = 2; p < PAGES; p++)); do
  flags=$(od -An -tu2 -j $((p * 4096 + 10)) -N2 "$PRISTINE/data.mdb" | tr -d ' ')
  if [ "$flags" = 1 ] || [ "$flags" = 2 ]; then TREE_PAGES+=("$p"); fi
done
echo "cache_flip: ${#SPECS[@]} specs, data.mdb $DATA_SIZE bytes ($PAGES pages, ${#TREE_PAGES[@]} B-tree pages)," \
     "$TRIALS trials"

rand() { echo $(((RANDOM << 15 | RANDOM) % $1)); }  # 0 .. $1-1

# Sets the byte at offset $2 of file $1 to its value XOR a random non-zero byte.
flip_byte() {
  local file=$1 off=$2 old new
  old=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  [ -n "$old" ] || return 0
  new=$((old ^ (1 + $(rand 255))))
  printf "$(printf '\\%03o' "$new")" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

crashes=0 hangs=0 wrong=0 gen_errors=0 hits=0 warned=0
declare -A kinds
trial_dir="$WORK/trial"
for ((t = 1; t <= TRIALS; t++)); do
  rm -rf "$trial_dir"
  mkdir -m 700 "$trial_dir"
  cp -a "$PRISTINE" "$trial_dir/cache"
  data="$trial_dir/cache/data.mdb"
  lock="$trial_dir/cache/lock.mdb"
  pick=$(rand 100)
  n=$((1 + $(rand 8)))
  if ((pick < 20)); then
    kind=flip-anywhere
    for ((i = 0; i < n; i++)); do flip_byte "$data" "$(rand "$DATA_SIZE")"; done
  elif ((pick < 45)); then
    kind=flip-tree-page
    for ((i = 0; i < n; i++)); do
      flip_byte "$data" $((TREE_PAGES[$(rand ${#TREE_PAGES[@]})] * 4096 + $(rand 4096)))
    done
  elif ((pick < 60)); then
    kind=flip-page-header
    for ((i = 0; i < n; i++)); do flip_byte "$data" $(($(rand "$PAGES") * 4096 + $(rand 48))); done
  elif ((pick < 75)); then
    kind=flip-meta
    for ((i = 0; i < n; i++)); do flip_byte "$data" $(($(rand 2) * 4096 + $(rand 160))); done
  elif ((pick < 83)); then
    kind=flip-lock
    for ((i = 0; i < n; i++)); do flip_byte "$lock" "$(rand 256)"; done
  elif ((pick < 91)); then
    kind=truncate
    truncate -s "$(rand "$DATA_SIZE")" "$data"
  else
    kind=zero-page
    dd if=/dev/zero of="$data" bs=4096 seek="$(rand "$PAGES")" count=1 conv=notrunc status=none
  fi
  kinds[$kind]=$((${kinds[$kind]:-0} + 1))
  spec=${SPECS[$(rand ${#SPECS[@]})]}
  name=$(basename "$spec" .yaml)

  for mode in hit gen; do
    out="$trial_dir/out-$mode"
    args=(emit --spec "$spec" --out-dir "$out")
    [ "$mode" = gen ] && args=(emit --no-daemon --no-verify --spec "$spec" --out-dir "$out")
    timeout -k 5 30 "$KG" --cache-dir "$trial_dir/cache" "${args[@]}" >"$trial_dir/$mode.out" 2>"$trial_dir/$mode.err"
    rc=$?
    grep -q "was damaged" "$trial_dir/$mode.err" && warned=$((warned + 1))
    if ((rc == 124 || rc == 137)); then
      hangs=$((hangs + 1))
      echo "trial $t ($kind, $name, $mode): hang" >&2
    elif ((rc > 128)); then
      crashes=$((crashes + 1))
      echo "trial $t ($kind, $name, $mode): killed by signal $((rc - 128))" >&2
      [ -n "${KG_FLIP_KEEP:-}" ] && cp -a "$trial_dir" "$KG_FLIP_KEEP/crash-$t"
    elif ((rc == 0)); then
      [ "$mode" = hit ] && hits=$((hits + 1))
      for f in "$WORK/expect/$name"/*; do
        if ! cmp -s "$f" "$out/$(basename "$f")"; then
          wrong=$((wrong + 1))
          echo "trial $t ($kind, $name, $mode): $(basename "$f") differs from the pristine emission" >&2
        fi
      done
    elif [ "$mode" = gen ]; then
      gen_errors=$((gen_errors + 1))
      echo "trial $t ($kind, $name, gen): exit $rc: $(head -c 300 "$trial_dir/gen.err")" >&2
    fi
  done
done

echo -n "cache_flip: damage kinds:"
for k in "${!kinds[@]}"; do echo -n " $k=${kinds[$k]}"; done
echo
echo "cache_flip: $TRIALS trials: crashes=$crashes hangs=$hangs wrong_kernels=$wrong gen_errors=$gen_errors" \
     "hits_served=$hits damage_warnings=$warned"
((crashes == 0 && hangs == 0 && wrong == 0 && gen_errors == 0))

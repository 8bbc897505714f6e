#!/usr/bin/env bash
# The local cache on a full file system (a small tmpfs in a private mount namespace):
#   1. a cache created on a full file system fails with "no space left on device", no crash;
#      once space is freed it works (no file left behind that fails forever);
#   2. the same with room for the lock file but not for the data file's first pages;
#   3. a write into an existing cache that runs out of space says "no space left on device"
#      (naming the directory); once space is freed the same write succeeds;
#   4. the read-only hit path, lock.mdb missing, on a full disk: an error, no crash;
#   5. the kernel emitted each time is the one a fresh cache gives.
# Needs root (or user namespaces) for mount; exits 77 (skipped) where mounting is not allowed.
#
#   tests/cache/full_disk.sh KERNELGEN SOURCE_DIR
set -u
KG=${1:?usage: full_disk.sh KERNELGEN SOURCE_DIR}
SRC=${2:?usage: full_disk.sh KERNELGEN SOURCE_DIR}
KG=$(cd "$(dirname "$KG")" && pwd)/$(basename "$KG")
SRC=$(cd "$SRC" && pwd)

if [ "${KG_FULL_DISK_INNER:-}" != 1 ]; then
  # Re-run inside a mount namespace of our own, so the tmpfs vanishes with us.
  if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    exec env KG_FULL_DISK_INNER=1 unshare -m "$0" "$@"
  elif unshare -rm true 2>/dev/null; then
    exec env KG_FULL_DISK_INNER=1 unshare -rm "$0" "$@"
  fi
  echo "full_disk: skipped: cannot create a mount namespace (needs root or user namespaces)"
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kg-full-disk-XXXXXX")
MNT="$WORK/mnt"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT" 2>"$WORK/mount.err"; then
  echo "full_disk: skipped: cannot mount a tmpfs: $(cat "$WORK/mount.err")"
  rm -rf "$WORK"
  exit 77
fi
trap 'umount "$MNT" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -m 700 "$WORK/run"
export XDG_RUNTIME_DIR="$WORK/run" KERNELGEN_DAEMON=/nonexistent
unset KERNELGEN_CACHE_DIR KERNELGEN_NO_DAEMON KERNELGEN_LOG

failures=0
check() {  # check DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAIL: $what"
    failures=$((failures + 1))
  fi
}

# What a fresh cache on a roomy file system emits.
for spec in causal full; do
  "$KG" --cache-dir "$WORK/ref-cache" emit --no-daemon --no-verify --spec "$SRC/specs/$spec.yaml" \
    --out-dir "$WORK/expect" >/dev/null 2>&1 || { echo "full_disk: cannot build the reference"; exit 1; }
done

emit() {  # emit SPEC CACHE: runs kernelgen, output in $WORK/emit.err, status in $rc
  rm -rf "$WORK/out"
  "$KG" --cache-dir "$2" emit --no-daemon --no-verify --spec "$SRC/specs/$1.yaml" --out-dir "$WORK/out" \
    >"$WORK/emit.out" 2>"$WORK/emit.err"
  rc=$?
}
same_as_reference() { cmp -s "$WORK/out/$1.cu" "$WORK/expect/$1.cu" && cmp -s "$WORK/out/$1.h" "$WORK/expect/$1.h"; }
says_no_space() { grep -qi "no space left on device" "$WORK/emit.err" && grep -q "$1" "$WORK/emit.err"; }
fill() {  # fill [KiB left free]
  rm -f "$MNT/fill"
  dd if=/dev/zero of="$MNT/fill" bs=4k status=none 2>/dev/null
  [ "${1:-0}" -gt 0 ] && truncate -s "-${1}K" "$MNT/fill"
  return 0
}

# 1. Created on a full file system.
fill
emit causal "$MNT/c1"
check "creating a cache on a full disk fails without a crash (exit $rc)" test "$rc" = 1
check "and says no space left on device, naming the directory" says_no_space "$MNT/c1"
rm -f "$MNT/fill"
emit causal "$MNT/c1"
check "after freeing space the same cache works (exit $rc)" test "$rc" = 0
check "and emits the right kernel" same_as_reference causal
check "without a damage warning" bash -c "! grep -q warning '$WORK/emit.err'"

# 2. Room for lock.mdb, not for data.mdb's two meta pages.
rm -rf "$MNT/c2"
fill 12
emit causal "$MNT/c2"
check "creating with room for the lock file only fails without a crash (exit $rc)" test "$rc" = 1
check "and says no space left on device" says_no_space "$MNT/c2"
rm -f "$MNT/fill"
emit causal "$MNT/c2"
check "after freeing space that cache works too (exit $rc)" test "$rc" = 0
check "and emits the right kernel" same_as_reference causal

# 3. A write that runs out of space in a working cache.
fill
emit full "$MNT/c1"
check "a store on a full disk fails without a crash (exit $rc)" test "$rc" = 1
check "and says no space left on device, naming the directory" says_no_space "$MNT/c1"
check "not as a generic I/O error" bash -c "! grep -q 'Input/output error' '$WORK/emit.err'"
emit causal "$MNT/c1"
check "the kernels stored before are still served on the full disk (exit $rc)" test "$rc" = 0
check "and are right" same_as_reference causal
rm -f "$MNT/fill"
emit full "$MNT/c1"
check "after freeing space the store succeeds (exit $rc)" test "$rc" = 0
check "and emits the right kernel" same_as_reference full

# 4. The read-only hit path when lock.mdb is missing and the disk is full: LMDB would create it
#    sparse and fault writing it through its map.
rm -f "$MNT/c1/lock.mdb"
fill
rm -rf "$WORK/out"
"$KG" --cache-dir "$MNT/c1" emit --spec "$SRC/specs/causal.yaml" --out-dir "$WORK/out" >"$WORK/emit.out" 2>"$WORK/emit.err"
rc=$?
check "the hit path without lock.mdb on a full disk fails without a crash (exit $rc)" test "$rc" = 1
check "and says no space left on device" says_no_space "$MNT/c1"
rm -f "$MNT/fill"
emit causal "$MNT/c1"
check "after freeing space it is a hit again (exit $rc)" test "$rc" = 0
check "and emits the right kernel" same_as_reference causal

if [ "$failures" -ne 0 ]; then
  echo "full_disk: $failures checks failed; last kernelgen stderr:"
  cat "$WORK/emit.err"
  exit 1
fi
echo "full_disk: all checks passed"

#!/bin/sh
# Runs its arguments on a machine with an NVIDIA GPU; elsewhere exits 77 (CTest: skipped).
[ -e /dev/nvidiactl ] || { echo "no GPU here: skipped"; exit 77; }
exec "$@"

#!/usr/bin/env bash
# kernelgen launch: the compiler launcher of kernelgen_add_attention(). It runs the command, exits as
# it did, and zeroes nvcc's temporary-file names in the ELF object the command wrote (-o FILE).
#   tests/cli/launch_test.sh <kernelgen> [nvcc]
set -uo pipefail
kg=$(readlink -f "$1")
nvcc=${2:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
cd "$work"

# A stand-in compiler: writes an ELF-looking object holding a temporary-file name, then exits as told.
cat >fakecc <<'SH'
#!/bin/sh
out=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift ;;
    --output-file=*) out=${1#--output-file=} ;;
    --exit=*) code=${1#--exit=} ;;
    --text) text=1 ;;
  esac
  shift
done
if [ -n "$out" ]; then
  if [ -n "${text:-}" ]; then printf 'tmpxft_0000abcd_00000001-6_k.cudafe1.cpp\n' >"$out"
  else printf '\177ELF\002\001\001\000 tmpxft_0000%04x_00000001-6_k.cudafe1.cpp end' $(($$ % 65536 + 1)) >"$out"; fi
fi
echo "fakecc ran" >&2
exit ${code:-0}
SH
chmod +x fakecc

"$kg" launch -- ./fakecc -c k.cu -o k.o 2>err
check "a successful compile exits 0" test $? -eq 0
check "the compiler's stderr passes through" grep -q "fakecc ran" err
check "the object's temporary-file name is zeroed" grep -q "tmpxft_00000000_00000000-6_k.cudafe1.cpp end" k.o
"$kg" launch -- ./fakecc -c k.cu --output-file=k2.o 2>/dev/null
check "--output-file= is the object too" cmp -s k.o k2.o
"$kg" launch ./fakecc -c k.cu -o k3.o 2>/dev/null
check "the -- is optional" cmp -s k.o k3.o

"$kg" launch -- ./fakecc -c k.cu -o bad.o --exit=3 2>/dev/null
check "a failing compile's status comes back" test $? -eq 3
check "nothing is rewritten after a failure" grep -q -v "tmpxft_00000000_00000000" bad.o

"$kg" launch -- ./fakecc -E k.cu -o k.ii --text 2>/dev/null
check "a file that is not ELF is left alone" grep -q "tmpxft_0000abcd_00000001" k.ii

"$kg" launch -- ./no-such-compiler -c k.cu -o k.o 2>err
check "a compiler that cannot start: 127" test $? -eq 127
check "... and says which" grep -q "no-such-compiler" err
"$kg" launch 2>err
check "no command: usage error" test $? -eq 2
"$kg" launch --help >help
check "--help teaches" grep -q "tmpxft" help

# The real nvcc: one source compiled twice, in two directories, gives the same object.
if [[ -x $nvcc ]]; then
  mkdir -p a b
  printf 'namespace kg_x { __global__ void f(float* p) { p[threadIdx.x] += 1.0f; } }\n' >a/k.cu
  printf 'extern "C" void launch_f(float* p) { kg_x::f<<<1, 32>>>(p); }\n' >>a/k.cu
  cp a/k.cu b/k.cu
  (cd a && "$nvcc" -arch=sm_90a -c k.cu -o plain.o && "$kg" launch -- "$nvcc" -arch=sm_90a -c k.cu -o k.o)
  check "nvcc compiles through the launcher" test $? -eq 0
  (cd b && "$nvcc" -arch=sm_90a -c k.cu -o plain.o && "$kg" launch -- "$nvcc" -arch=sm_90a -c k.cu -o k.o)
  check "plain nvcc objects differ (the pid in the temporary-file name)" test "$(cmp -s a/plain.o b/plain.o; echo $?)" -ne 0
  check "objects through the launcher are byte-identical" cmp -s a/k.o b/k.o
else
  echo "launch_test: no nvcc ($nvcc): the real-compiler checks did not run" >&2
fi

echo "launch_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

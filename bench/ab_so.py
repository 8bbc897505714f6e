#!/usr/bin/env python3
"""Same-process A/B of builds of one spec's kernel: each .so is a variant of kg_<spec>_forward
(emitted by `kernelgen emit`, edited, built with nvcc -shared). The variants run on the same inputs
with attention_bench's Timer (L2 flushed, rotating input sets, median); every output is compared
with the first variant's, so a faster variant that computes something else is reported, not timed.

    kernelgen emit --spec specs/document_mask.yaml --out-dir v --arch sm_90a   (then edit copies)
    g++ -std=c++17 -fPIC -c -Icore/include -I/usr/local/cuda/include tests/gpu/abi_layout.cc
    nvcc -arch=sm_90a -O3 -std=c++17 -Icore/include -shared -Xcompiler -fPIC -o a.so v/a.cu abi_layout.o
    bench/ab_so.py --spec document_mask --seqs 4096 16384 --runtime documents -- base=a.so new=b.so

(abi_layout.o exports kg_abi_layout, which kg_abi.KernelLibrary checks the ctypes mirror against.)

Prints one line per (S, variant): median ms, the ratio to the first variant, max |diff|.
"""
import argparse
import ctypes
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "gpu"))
for extra in (os.path.join(here, "..", ".gpu", "scripts"),):
    if os.path.isdir(extra):
        sys.path.insert(0, extra)

import attention_bench  # noqa: E402
import kg_abi  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="spec name: the entry point is kg_<spec>_forward")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=attention_bench.B)
    ap.add_argument("--heads", type=int, default=attention_bench.H)
    ap.add_argument("--seqs", type=int, nargs="+", default=[4096])
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--runtime", choices=["none", "documents"], default="none",
                    help="runtime tensors: documents = q_doc/kv_doc of 4 equal documents")
    ap.add_argument("--params", type=float, nargs="*", default=[])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("variants", nargs="+", help="name=path.so")
    args = ap.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("ab_so: no CUDA device")
        return kg_abi.SKIP
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    variants = []
    for v in args.variants:
        name, _, path = v.partition("=")
        lib = kg_abi.KernelLibrary(path)
        variants.append((name, lib.forward(args.spec)))
    timer = attention_bench.Timer(torch, args.runs, 3)
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1)
    stream = torch.cuda.current_stream().cuda_stream
    D, B, H = args.head_dim, args.batch, args.heads
    for S in args.seqs:
        tensors = []
        if args.runtime == "documents":
            _, t = attention_bench._documents(torch, S)
            tensors = [t["q_doc"].cuda(), t["kv_doc"].cuda()]
        sets = attention_bench.input_sets(torch, gen, 3, B, H, H, S, S, D, dtype, D ** -0.5, args.params, tensors)
        base_out = None
        base_ms = None
        for name, fwd in variants:
            def go_for(st, fwd=fwd):
                def go():
                    err = fwd(ctypes.byref(st["args"]), ctypes.c_void_p(stream))
                    if err:
                        raise RuntimeError("%s returned %s" % (name, kg_abi.cuda_error_name(err)))
                return go
            go0 = go_for(sets[0])
            go0()
            torch.cuda.synchronize()
            out = sets[0]["out"].float().clone()
            diff = 0.0 if base_out is None else (out - base_out).abs().max().item()
            if base_out is None:
                base_out = out
            r = timer.time([go_for(st) for st in sets])
            ms = r["median_ms"]
            if base_ms is None:
                base_ms = ms
            print("S=%-6d %-14s %8.3f ms  %5.2fx  max|diff| %.3g" % (S, name, ms, base_ms / ms, diff), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""flex_check — every spec's template kernel against PyTorch FlexAttention, on the GPU.

    python3 tests/gpu/flex_check.py --lib build/tests/gpu/libkg_spec_kernels.so \
        --mods build/tests/gpu/mods [--only causal --only alibi_causal] [--seed N] [--json out.json]

For each torch-flavor mods module in --mods (kg_spec_python <spec> torch, one per spec; built by
the CMake target kg_spec_mods) it calls kg_<NAME>_forward from --lib through ctypes (the
KgAttentionArgs mirror is checked against the library's kg_abi_layout() first) and compares with
torch.compile(flex_attention) using the module's score_mod / mask_mod, on a few shapes: GQA
(enable_gqa=True), MQA, lengths that are not multiples of 128, Sq != Skv, one decoding shape (Sq = 1
against 4097 keys), and one trial with scores near ±50. Outputs are poisoned with NaN first; every
element is compared with the tolerance of kg_gpu_tests (bf16 abs 2e-2 + rel 2e-2, fp16 5e-3 +
5e-3; LSE 1e-3 + 1e-3, -inf exactly where Flex has -inf); NaN/Inf never pass; q, k, v and index tensors must be unchanged afterwards.
A small case that fails is compared again with FlexAttention's eager path (flex_attention without
torch.compile: the mods over the dense score matrix); when ours matches that and the compiled
kernel does not, the case passes and is printed as ok* (torch 2.11's compiled decode kernel
differs from its eager path for neighborhood_2d at Sq = 1, Skv = 4097 on an H200).

Exit status: 0 all match, 1 a mismatch or error, 77 skipped (no torch, no FlexAttention, or no
CUDA device).
"""
import argparse
import glob
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kg_abi  # noqa: E402

# (B, Hq, Hkv, Sq, Skv, score_std): GQA with a non-multiple length; MQA with Sq < Skv; Sq > Skv with
# scores near ±50 (a missing max subtraction overflows there); the decode path (seqlen_q <= 64:
# GQA rows packed, split KV) at Sq = 1 (one shape only: every shape is a FlexAttention compile per spec).
SHAPES = [
    (2, 8, 2, 1000, 1000, 2.0),
    (1, 4, 1, 300, 700, 2.0),
    (2, 4, 4, 517, 129, 20.0),
    (2, 32, 8, 1, 4097, 2.0),
]


# Cases whose dense score matrix (B · Hq · Sq · Skv floats) is at most this large are re-checked
# against FlexAttention's eager path when they fail (the decode shape: 262 k scores).
EAGER_MAX_SCORES = 1 << 22


def skip(msg):
    print("SKIP: " + msg)
    return kg_abi.SKIP


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True, help="libkg_spec_kernels.so")
    ap.add_argument("--mods", required=True, help="directory of torch-flavor mods modules (<name>.py)")
    ap.add_argument("--only", action="append", default=[], help="check only this spec (repeatable)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None, help="write per-case results here")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        return skip("python3 has no torch (%s)" % e)
    if not torch.cuda.is_available():
        return skip("no CUDA device (torch.cuda.is_available() is False)")
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as e:
        return skip("this torch has no FlexAttention (%s)" % e)

    import torch._dynamo
    for knob in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 4096)

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print("device: %s; torch %s; seed %d (repeat with --seed %d)" % (torch.cuda.get_device_name(0), torch.__version__,
                                                                      seed, seed))
    try:
        lib = kg_abi.KernelLibrary(args.lib)
    except (OSError, RuntimeError) as e:
        print("FAIL: cannot use %s: %s" % (args.lib, e))
        return 1
    print("ctypes mirror: " + lib.layout)

    mod_files = sorted(glob.glob(os.path.join(args.mods, "*.py")))
    if args.only:
        mod_files = [f for f in mod_files if os.path.splitext(os.path.basename(f))[0] in args.only]
    if not mod_files:
        print("FAIL: no mods modules in %s (build the kg_spec_mods target)" % args.mods)
        return 1

    flex = torch.compile(flex_attention, dynamic=False)
    gen = torch.Generator().manual_seed(seed)
    results, failures, context_lost, eager_only = [], 0, False, 0
    for path in mod_files:
        if context_lost:
            break
        mods = kg_abi.load_mods(path)
        name = mods.NAME
        if not lib.has(name):
            print("FAIL %s: %s has no kg_%s_forward" % (name, args.lib, name))
            failures += 1
            continue
        fwd = lib.forward(name)
        dtype = kg_abi.torch_dtype(mods)
        D = mods.HEAD_DIM
        print("== %s (%s, head_dim %d)" % (name, mods.DTYPE, D))
        for (B, Hq, Hkv, Sq, Skv, std) in SHAPES:
            case = "B=%d Hq=%d Hkv=%d Sq=%d Skv=%d scores~N(0,%g^2)" % (B, Hq, Hkv, Sq, Skv, std)
            rec = {"spec": name, "shape": [B, Hq, Hkv, Sq, Skv], "score_std": std}
            try:
                q = torch.randn(B, Hq, Sq, D, generator=gen).to(dtype).cuda()
                k = torch.randn(B, Hkv, Skv, D, generator=gen).to(dtype).cuda()
                v = torch.randn(B, Hkv, Skv, D, generator=gen).to(dtype).cuda()
                scale = std / D ** 0.5
                params, plist, tensors, tlist = kg_abi.random_runtime(mods, B, Hq, Hkv, Sq, Skv, gen)
                score_mod, mask_mod = mods.make_mods(params, tensors)
                snapshot = [t.clone() for t in [q, k, v] + tlist]

                block_mask = create_block_mask(mask_mod, B, Hq, Sq, Skv, device="cuda") if mask_mod else None
                ref, ref_lse = flex(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale,
                                    enable_gqa=(Hq != Hkv), return_lse=True)
                out = torch.full_like(q, float("nan"))
                lse = torch.full((B, Hq, Sq), float("nan"), dtype=torch.float32, device="cuda")
                kg_abi.call(fwd, q, k, v, out, lse, scale, plist, tlist)
                torch.cuda.synchronize()

                ok, msg, max_err = kg_abi.compare(out, ref, lse, ref_lse, mods.DTYPE)
                if not ok and B * Hq * Sq * Skv <= EAGER_MAX_SCORES:
                    # A second opinion: FlexAttention's eager path (the mods applied elementwise
                    # over the dense score matrix, no Triton kernel). When ours matches it and the
                    # compiled kernel does not, the compiled kernel disagrees with FlexAttention's
                    # own definition: the case passes against the eager path, and is reported.
                    eager, eager_lse = flex_attention(q.float(), k.float(), v.float(), score_mod=score_mod,
                                                      block_mask=block_mask, scale=scale,
                                                      enable_gqa=(Hq != Hkv), return_lse=True)
                    e_ok, e_msg, e_err = kg_abi.compare(out, eager.to(dtype), lse, eager_lse, mods.DTYPE)
                    f_ok, _, _ = kg_abi.compare(ref, eager.to(dtype), ref_lse, eager_lse, mods.DTYPE)
                    rec.update(eager_agrees_with_ours=e_ok, eager_agrees_with_flex=f_ok)
                    if e_ok and not f_ok:
                        ok, eager_only, max_err = True, eager_only + 1, e_err
                    msg += "; FlexAttention's eager path agrees with %s" % (
                        "ours, not with its compiled kernel" if e_ok and not f_ok else
                        "its compiled kernel, not with ours" if f_ok and not e_ok else
                        "both" if e_ok else "neither (eager vs ours: %s)" % e_msg)
                if not torch.isfinite(ref).all():
                    ok, msg = False, "FlexAttention's own output has NaN/Inf; " + msg
                if not all(torch.equal(a, b) for a, b in zip([q, k, v] + tlist, snapshot)):
                    ok, msg = False, "inputs were modified by the kernel; " + msg
                lse_ok = torch.where(torch.isneginf(ref_lse), torch.zeros_like(lse), (lse - ref_lse).abs())
                lse_err = float(torch.nan_to_num(lse_ok, nan=float("inf")).max().item())
                rec.update(ok=ok, max_abs_err=max_err, lse_max_abs_err=lse_err, params=params, message=msg)
                if ok and rec.get("eager_agrees_with_ours") and not rec.get("eager_agrees_with_flex"):
                    rec["against"] = "eager"
                    print("  ok*  %s: matches FlexAttention's eager path (max |diff| %.3g); its compiled kernel "
                          "differs: %s" % (case, max_err, msg))
                elif ok:
                    print("  ok   %s: max |diff| %.3g, lse max |diff| %.3g" % (case, max_err, lse_err))
                else:
                    failures += 1
                    print("  FAIL %s %s, scale %.4g, params %s:\n    %s" % (name, case, scale, params, msg))
            except Exception as e:  # a crash in one case is a finding, not the end of the run
                failures += 1
                rec.update(ok=False, message="%s: %s" % (type(e).__name__, e))
                print("  FAIL %s %s: %s: %s" % (name, case, type(e).__name__, e))
                traceback.print_exc(limit=3)
                if "illegal" in str(e).lower() or "unspecified launch failure" in str(e).lower():
                    print("FAIL: the CUDA context is lost; stopping")
                    context_lost = True
                    results.append(rec)
                    break
            results.append(rec)

    passed = sum(1 for r in results if r.get("ok"))
    print("%s: %d/%d FlexAttention comparisons match (%d spec(s)%s); seed %d"
          % ("PASS" if failures == 0 else "FAIL", passed, len(results), len(mod_files),
             "; %d against the eager path, ok* above" % eager_only if eager_only else "", seed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": seed, "time": time.time(), "results": results}, f, indent=1, default=str)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

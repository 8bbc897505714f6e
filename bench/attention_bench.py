#!/usr/bin/env python3
"""attention_bench — KernelGen's emitted kernels vs compiled FlexAttention vs SDPA (flash, cuDNN).

    python3 bench/attention_bench.py --lib build/tests/gpu/libkg_bench_kernels.so \
        --mods build/tests/gpu/bench_mods --out bench.json \
        [--seqs 4096 16384] [--dims 128 64] [--variants full causal ...] [--runs 30] [--sets 3]
        [--no-decode | --decode-only] [--decode-shapes 16:1:8192 ...] [--hbm-peak-tbs 4.8]
        [--extras causal_fp16 gqa_causal document ... | --extras]

B=2, H=16 (q and kv), bf16, Sq = Skv = S. Variants (spec names in specs/ and bench/specs/):
full, causal, causal + relative position, causal + ALiBi (num_heads = 16), causal + tanh softcap 30,
sliding window 1024 (causal), 2-D neighbourhood 13x13 (a 64x64 image at S=4096, a 128x128 image at
S=16384 — the table says which). SDPA only where its semantics match (full, causal).
Extra rows (--extras, all by default) at the same S: causal in fp16, causal fp16 at head_dim 256,
full and causal with GQA (32 query heads over 8 KV heads; SDPA with enable_gqa), a document mask
reading runtime id tensors (4 equal documents per sequence) and prefix-LM with a runtime
prefix length (S/4).

Method (.library/device/METHOD.md): before timing, our output is compared with FlexAttention's on
the same inputs (tolerance of kg_gpu_tests; a mismatch marks the row WRONG and gives it no speed
ratio); then every implementation gets warm-up runs on every input set and >= 30 timed runs with
CUDA events, rotating 3 input sets, a 256 MB buffer written before each run to flush L2, and a
short device sleep before the start event so host-side launch overhead (ctypes, dynamo guards)
is not timed. The median is reported. FlexAttention's block mask is built once, outside the
timing (it is reusable). TFLOP/s = 4*B*H*S*S*D * (fraction of (q, kv) pairs the mask keeps, counted
exactly by evaluating mask_mod on the GPU over the whole S x S grid) / time. A time under the
physical floor (those FLOPs at 990 TFLOP/s) is flagged SUSPECT.
Prints a markdown table last; writes everything to --out (JSON).

Decode rows (--decode-shapes, on by default; --no-decode skips them, --decode-only runs nothing
else): spec `full` (d128 bf16), 32 query heads over 8 KV heads (GQA), Sq = 1 at Skv 8k and 64k for
B 4 and 16, and a chunk Sq = 16 at Skv 8k; ours side by side with SDPA cuDNN, SDPA flash (both with
enable_gqa=True, else with K/V expanded to the query heads, which the table says) and compiled
FlexAttention (enable_gqa=True). Checked first against FlexAttention (out and LSE; SDPA when Flex
fails). Achieved bandwidth = bytes of K + V + Q + O (each read or written once) / median time;
"% of HBM" divides it by --hbm-peak-tbs (default: 4.8 TB/s for an H200, 3.35 for an H100, by the
device name). A backend that fails prints n/a with the reason and does not stop the run.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
for p in (HERE, os.path.join(HERE, "..", "tests", "gpu")):
    if os.path.exists(os.path.join(p, "kg_abi.py")):
        sys.path.insert(0, p)
import kg_abi  # noqa: E402

B, H = 2, 16
PEAK_TFLOPS = 990.0  # H100 SXM dense bf16, datasheet

# key: (label, {head_dim: spec} or {(head_dim, S): spec}, SDPA is_causal or None when SDPA cannot express it)
VARIANTS = {
    "full": ("full", {128: "full", 64: "full_d64", 256: "full_d256"}, False),
    "causal": ("causal", {128: "causal", 64: "causal_d64", 256: "causal_d256"}, True),
    "relpos": ("causal + relative position", {128: "relpos_causal", 64: "relpos_causal_d64"}, None),
    "alibi": ("causal + ALiBi", {128: "alibi_causal", 64: "alibi_causal_d64"}, None),
    "softcap": ("causal + tanh softcap 30", {128: "softcap_causal", 64: "softcap_causal_d64"}, None),
    "sliding": ("sliding window 1024 (causal)", {128: "sliding_window", 64: "sliding_window_d64"}, None),
    "natten": ("2-D neighbourhood 13x13", {(128, 4096): "neighborhood_2d", (64, 4096): "neighborhood_2d_d64",
                                          (128, 16384): "neighborhood_2d_128px",
                                          (64, 16384): "neighborhood_2d_128px_d64"}, None),
}
IMAGE = {4096: "64x64 image", 16384: "128x128 image"}

# Rows beyond the variant grid (--extras, on by default): other dtypes and head_dims, GQA prefill,
# and masks that read runtime tensors or params, with inputs an engine would pass.
#   key: (label, spec, head_dim, query heads, KV heads, SDPA is_causal or None, runtime)
# runtime(torch, S) -> (fixed params, {tensor name: tensor}) or None for kg_abi.random_runtime's.
def _documents(torch, S, docs=4):
    ids = (torch.arange(S, dtype=torch.int32) * docs // S).repeat(B, 1).contiguous()  # docs equal runs
    return {}, {"q_doc": ids, "kv_doc": ids}


EXTRAS = {
    "causal_fp16": ("causal, fp16", "causal_fp16", 128, H, H, True, None),
    "causal_d256": ("causal, fp16, d256", "causal_fp16_d256", 256, H, H, True, None),
    "gqa_full": ("full, GQA 32/8", "full", 128, 32, 8, False, None),
    "gqa_causal": ("causal, GQA 32/8", "causal", 128, 32, 8, True, None),
    "document": ("document mask, 4 equal documents (runtime ids)", "document_mask", 128, H, H, None, _documents),
    "prefix_lm": ("prefix-LM, prefix S/4 (runtime param)", "prefix_lm", 128, H, H, None,
                  lambda torch, S: ({"prefix_len": S // 4}, {})),
}


def spec_for(variant, D, S):
    specs = VARIANTS[variant][1]
    return specs.get((D, S)) or specs.get(D)


def unmasked_fraction(torch, mask_mod, S, chunk=1024):
    """Exact fraction of (q, kv) pairs mask_mod keeps, for b = h = 0 (no bench variant's mask reads b or h)."""
    if mask_mod is None:
        return 1.0
    dev = "cuda"
    b = torch.zeros((), dtype=torch.int32, device=dev)
    h = torch.zeros((), dtype=torch.int32, device=dev)
    kv = torch.arange(S, dtype=torch.int32, device=dev)[None, :]
    kept = 0
    for start in range(0, S, chunk):
        q = torch.arange(start, min(start + chunk, S), dtype=torch.int32, device=dev)[:, None]
        m = mask_mod(b, h, q, kv)
        kept += int(torch.broadcast_to(m, (q.shape[0], S)).sum().item())
    return kept / float(S * S)


class Timer:
    """Median of CUDA-event times over rotating input sets, L2 flushed before every run."""

    def __init__(self, torch, runs, warmup):
        self.torch, self.runs, self.warmup = torch, runs, warmup
        self.flush = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")

    def time(self, fns):
        torch = self.torch
        for _ in range(self.warmup):
            for fn in fns:
                fn()
        torch.cuda.synchronize()
        events = []
        t0 = time.perf_counter()
        for r in range(self.runs):
            fn = fns[r % len(fns)]
            self.flush.fill_(r & 0xFF)  # write 256 MB: evicts L2 (50 MB on H100)
            torch.cuda._sleep(400_000)  # ~0.2 ms of device time: the launch below is queued before start fires
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events.append((start, end))
        torch.cuda.synchronize()
        host_ms = (time.perf_counter() - t0) * 1e3 / self.runs
        times = [s.elapsed_time(e) for s, e in events]
        return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
                "runs": len(times), "host_ms_per_run_incl_flush": host_ms}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True, help="libkg_bench_kernels.so")
    ap.add_argument("--mods", required=True, help="directory of torch-flavor mods (<spec>.py)")
    ap.add_argument("--out", default=None, help="JSON results")
    ap.add_argument("--seqs", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per input set")
    ap.add_argument("--sets", type=int, default=3, help="input sets rotated through")
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--extras", nargs="*", default=list(EXTRAS), choices=list(EXTRAS),
                    help="rows beyond the variant grid (default: all; --extras with no name: none)")
    ap.add_argument("--no-decode", action="store_true", help="skip the decode rows")
    ap.add_argument("--decode-only", action="store_true", help="only the decode rows")
    ap.add_argument("--decode-shapes", nargs="+", default=DECODE_SHAPES_DEFAULT, metavar="B:SQ:SKV",
                    help="decode rows as batch:seqlen_q:seqlen_kv (heads %d/%d, d%d)" % (DECODE_HQ, DECODE_HKV,
                                                                                       DECODE_D))
    ap.add_argument("--hbm-peak-tbs", type=float, default=None,
                    help="HBM peak for the decode rows' %% column (default by device name)")
    args = ap.parse_args()
    if args.runs < 30 or args.sets < 3:
        print("note: METHOD asks for >= 30 runs over >= 3 input sets")

    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as e:
        print("SKIP: needs torch with FlexAttention (%s)" % e)
        return kg_abi.SKIP
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return kg_abi.SKIP
    import torch._dynamo
    for knob in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 4096)
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        SDPBackend = sdpa_kernel = None

    lib = kg_abi.KernelLibrary(args.lib)
    dev_name = torch.cuda.get_device_name(0)
    print("device: %s; torch %s; %s" % (dev_name, torch.__version__, lib.layout))
    flex = torch.compile(flex_attention, dynamic=False)
    timer = Timer(torch, args.runs, args.warmup)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    rows = []
    decode_rows = []
    if not args.no_decode:
        peak = args.hbm_peak_tbs or hbm_peak_tbs(dev_name)
        for text in args.decode_shapes:
            try:
                b_, sq_, skv_ = (int(x) for x in text.split(":"))
            except ValueError:
                print("bad --decode-shapes entry %r (expected B:SQ:SKV)" % text)
                return 2
            row = {"kind": "decode", "B": b_, "Hq": DECODE_HQ, "Hkv": DECODE_HKV, "Sq": sq_, "Skv": skv_,
                   "D": DECODE_D, "spec": DECODE_SPEC, "hbm_peak_tbs": peak}
            decode_rows.append(row)
            print("== decode B=%d Hq=%d Hkv=%d Sq=%d Skv=%d D=%d (spec %s)" % (b_, DECODE_HQ, DECODE_HKV, sq_, skv_,
                                                                               DECODE_D, DECODE_SPEC), flush=True)
            try:
                run_decode(torch, F, flex, SDPBackend, sdpa_kernel, lib, timer, gen, args, row)
            except Exception as e:
                row["error"] = "%s: %s" % (type(e).__name__, e)
                print("  ERROR: " + row["error"])
                traceback.print_exc(limit=4)
            torch.cuda.empty_cache()

    for S in ([] if args.decode_only else args.seqs):
        for D in args.dims:
            for variant in args.variants:
                label = VARIANTS[variant][0] + (" (%s)" % IMAGE.get(S, "?") if variant == "natten" else "")
                spec = spec_for(variant, D, S)
                row = {"variant": variant, "label": label, "S": S, "D": D, "B": B, "H": H, "spec": spec}
                rows.append(row)
                print("== %s, S=%d, D=%d (spec %s)" % (label, S, D, spec), flush=True)
                try:
                    run_config(torch, F, flex, create_block_mask, SDPBackend, sdpa_kernel, lib, timer, gen,
                               args, variant, spec, S, D, row)
                except Exception as e:  # record and go on with the next configuration
                    row["error"] = "%s: %s" % (type(e).__name__, e)
                    print("  ERROR: " + row["error"])
                    traceback.print_exc(limit=4)
                torch.cuda.empty_cache()

    for S in ([] if args.decode_only else args.seqs):
        for extra in args.extras:
            label, spec, D, hq, hkv, is_causal, runtime = EXTRAS[extra]
            row = {"variant": extra, "label": label, "S": S, "D": D, "B": B, "H": hq, "Hkv": hkv, "spec": spec}
            rows.append(row)
            print("== %s, S=%d, D=%d, heads %d/%d (spec %s)" % (label, S, D, hq, hkv, spec), flush=True)
            try:
                run_config(torch, F, flex, create_block_mask, SDPBackend, sdpa_kernel, lib, timer, gen,
                           args, extra, spec, S, D, row, hq=hq, hkv=hkv, is_causal=is_causal, runtime=runtime)
            except Exception as e:
                row["error"] = "%s: %s" % (type(e).__name__, e)
                print("  ERROR: " + row["error"])
                traceback.print_exc(limit=4)
            torch.cuda.empty_cache()

    table = markdown(rows) if rows else ""
    dtable = markdown_decode(decode_rows) if decode_rows else ""
    print()
    print(table)
    if dtable:
        print()
        print(dtable)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": dev_name, "torch": torch.__version__, "B": B, "H": H, "runs": args.runs,
                       "sets": args.sets, "method": "median of CUDA-event times; L2 flushed (256 MB write) before "
                       "each run; rotating input sets; FLOPs = 4*B*H*S*S*D*unmasked_fraction (exact count); "
                       "decode bandwidth = bytes of K+V+Q+O / time",
                       "results": rows, "table": table, "decode_results": decode_rows, "decode_table": dtable},
                      f, indent=1)
    bad = [r for r in rows + decode_rows if r.get("error") or not r.get("correct", False)]
    return 1 if bad else 0


def input_sets(torch, gen, count, b, hq, hkv, sq, skv, D, dtype, scale, plist, tlist):
    """`count` input sets, each q [b, hq, sq, D] and k, v [b, hkv, skv, D] drawn from N(0, 1) in
    that order, an output buffer and the kernel's argument block (`keep` holds what it points at)."""
    sets = []
    for _ in range(count):
        q = torch.randn(b, hq, sq, D, generator=gen, device="cuda", dtype=torch.float32).to(dtype)
        k, v = (torch.randn(b, hkv, skv, D, generator=gen, device="cuda", dtype=torch.float32).to(dtype)
                for _ in range(2))
        out = torch.empty_like(q)
        a, keep = kg_abi.make_args(q, k, v, out, None, scale, plist, tlist)
        sets.append({"q": q, "k": k, "v": v, "out": out, "args": a, "keep": keep})
    return sets


def ours_caller(torch, fwd, spec):
    """ours(set) -> a function that enqueues kg_<spec>_forward on that set on the current stream."""
    import ctypes
    stream = torch.cuda.current_stream().cuda_stream

    def ours(st):
        def go():
            err = fwd(ctypes.byref(st["args"]), ctypes.c_void_p(stream))
            if err:
                raise RuntimeError("kg_%s_forward returned %s" % (spec, kg_abi.cuda_error_name(err)))
        return go
    return ours


def run_config(torch, F, flex, create_block_mask, SDPBackend, sdpa_kernel, lib, timer, gen, args, variant, spec, S,
               D, row, hq=H, hkv=H, is_causal="variant", runtime=None):
    """One row: `hq` query heads over `hkv` KV heads; SDPA with is_causal (None: not expressible;
    "variant": VARIANTS' entry); runtime(torch, S) -> (fixed params, tensors by name) overrides
    kg_abi.random_runtime's (tensors must not differ across the batch: the unmasked fraction is
    counted at b = 0)."""
    mods_path = os.path.join(args.mods, spec + ".py")
    if not os.path.exists(mods_path):
        raise RuntimeError("no mods module %s (build kg_bench_mods)" % mods_path)
    mods = kg_abi.load_mods(mods_path)
    fwd = lib.forward(spec)
    dtype = kg_abi.torch_dtype(mods)
    scale = 1.0 / math.sqrt(D)
    fixed, given = runtime(torch, S) if runtime else ({}, {})
    fixed = dict({"num_heads": hq}, **fixed)
    params, plist, tensors, tlist = kg_abi.random_runtime(mods, B, hq, hkv, S, S, torch.Generator().manual_seed(7),
                                                          fixed_params=fixed)
    if given:
        names = [name for name, _, _ in mods.TENSORS]
        for name, t in given.items():
            t = t.to(tensors[name].dtype).to("cuda").contiguous()
            if t.shape != tensors[name].shape:
                raise RuntimeError("runtime tensor %s has shape %s, the spec's is %s" % (name, tuple(t.shape),
                                                                                       tuple(tensors[name].shape)))
            tensors[name] = t
            tlist[names.index(name)] = t
    row["params"] = params
    score_mod, mask_mod = mods.make_mods(params, tensors)

    frac = unmasked_fraction(torch, mask_mod, S)
    flops = 4.0 * B * hq * S * S * D * frac
    row.update(unmasked_fraction=frac, flops=flops, floor_ms=flops / (PEAK_TFLOPS * 1e12) * 1e3)
    print("  unmasked fraction %.6f (exact), %.3g FLOP" % (frac, flops))

    gqa = hq != hkv
    sets = input_sets(torch, gen, args.sets, B, hq, hkv, S, S, D, dtype, scale, plist, tlist)
    block_mask = None
    if mask_mod is not None:  # over b (a mask may read per-batch tensors), broadcast over h
        mb = B if mods.TENSORS else None
        try:
            block_mask = create_block_mask(mask_mod, mb, None, S, S, device="cuda", _compile=True)
        except TypeError:  # a torch without the _compile knob
            block_mask = create_block_mask(mask_mod, mb, None, S, S, device="cuda")
    ours = ours_caller(torch, fwd, spec)

    def flex_fn(st):
        return lambda: flex(st["q"], st["k"], st["v"], score_mod=score_mod, block_mask=block_mask, scale=scale,
                            enable_gqa=gqa)

    # Correctness first, on set 0: ours (with LSE) vs FlexAttention.
    st = sets[0]
    ref, ref_lse = flex(st["q"], st["k"], st["v"], score_mod=score_mod, block_mask=block_mask, scale=scale,
                        enable_gqa=gqa, return_lse=True)
    out = torch.full_like(st["q"], float("nan"))
    lse = torch.full((B, hq, S), float("nan"), dtype=torch.float32, device="cuda")
    kg_abi.call(fwd, st["q"], st["k"], st["v"], out, lse, scale, plist, tlist)
    torch.cuda.synchronize()
    ok, msg, max_err = kg_abi.compare(out, ref, lse, ref_lse, mods.DTYPE)
    row.update(correct=ok, max_abs_err_vs_flex=max_err, check_message=msg)
    print("  check vs FlexAttention: %s, max |diff| %.3g %s" % ("ok" if ok else "WRONG", max_err, msg))
    del out, lse, ref, ref_lse

    impls = [("ours", [ours(s) for s in sets]), ("flex", [flex_fn(s) for s in sets])]
    if is_causal == "variant":
        is_causal = VARIANTS[variant][2]
    if is_causal is not None and not args.no_sdpa and sdpa_kernel is not None:
        for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            def mk(s, backend=backend):
                def go():
                    with sdpa_kernel(backend):
                        if gqa:
                            return F.scaled_dot_product_attention(s["q"], s["k"], s["v"], is_causal=is_causal,
                                                                  scale=scale, enable_gqa=True)
                        return F.scaled_dot_product_attention(s["q"], s["k"], s["v"], is_causal=is_causal, scale=scale)
                return go
            try:
                o = mk(sets[0])()
                r = flex_fn(sets[0])()
                sok, smsg, serr = kg_abi.compare(o, r, dtype=mods.DTYPE)
                row[name + "_max_abs_err_vs_flex"] = serr
                print("  %s vs FlexAttention: max |diff| %.3g%s" % (name, serr, "" if sok else " (MISMATCH: %s)" % smsg))
                impls.append((name, [mk(s) for s in sets]))
            except Exception as e:
                row[name + "_error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                print("  %s unavailable: %s" % (name, row[name + "_error"]))

    for name, fns in impls:
        t = timer.time(fns)
        row[name] = t
        t["tflops"] = flops / (t["median_ms"] * 1e-3) / 1e12
        suspect = t["median_ms"] < row["floor_ms"]
        if suspect:
            t["suspect"] = "faster than the physical floor (%.3f ms)" % row["floor_ms"]
        print("  %-10s median %.3f ms (min %.3f, max %.3f), %.0f TFLOP/s%s" % (name, t["median_ms"], t["min_ms"],
              t["max_ms"], t["tflops"], " SUSPECT" if suspect else ""), flush=True)
    if row["correct"] and "ours" in row and "flex" in row:
        row["speed_ours_over_flex"] = row["flex"]["median_ms"] / row["ours"]["median_ms"]


# ---- Decode rows ------------------------------------------------------------------------------

DECODE_SPEC = "full"
DECODE_HQ, DECODE_HKV, DECODE_D = 32, 8, 128
DECODE_SHAPES_DEFAULT = ["4:1:8192", "16:1:8192", "4:1:65536", "16:1:65536", "4:16:8192", "16:16:8192"]


def hbm_peak_tbs(device_name):
    """Datasheet HBM bandwidth by device name (TB/s); 0 when unknown (the % column is then empty)."""
    n = device_name.upper()
    for key, tbs in (("H200", 4.8), ("H100 NVL", 3.9), ("H100 PCIE", 2.0), ("H100", 3.35), ("H800", 3.35),
                     ("A100-SXM4-80GB", 2.04), ("A100 80GB", 1.94), ("A100", 1.56)):
        if key in n:
            return tbs
    return 0.0


def run_decode(torch, F, flex, SDPBackend, sdpa_kernel, lib, timer, gen, args, row):
    Bd, Hq, Hkv, Sq, Skv, D = row["B"], row["Hq"], row["Hkv"], row["Sq"], row["Skv"], row["D"]
    mods_path = os.path.join(args.mods, DECODE_SPEC + ".py")
    if not os.path.exists(mods_path):
        raise RuntimeError("no mods module %s (build kg_bench_mods)" % mods_path)
    mods = kg_abi.load_mods(mods_path)
    fwd = lib.forward(DECODE_SPEC)
    dtype = kg_abi.torch_dtype(mods)
    scale = 1.0 / math.sqrt(D)
    _, plist, _, tlist = kg_abi.random_runtime(mods, Bd, Hq, Hkv, Sq, Skv, torch.Generator().manual_seed(7))
    elem = torch.finfo(dtype).bits // 8
    nbytes = elem * (2 * Bd * Hkv * Skv * D + 2 * Bd * Hq * Sq * D)  # K + V read, Q read, O written
    row["bytes"] = nbytes
    floor_ms = nbytes / (row["hbm_peak_tbs"] * 1e12) * 1e3 if row["hbm_peak_tbs"] else 0.0
    row["floor_ms"] = floor_ms
    print("  %.1f MB of K+V+Q+O" % (nbytes / 1e6))

    sets = input_sets(torch, gen, args.sets, Bd, Hq, Hkv, Sq, Skv, D, dtype, scale, plist, tlist)
    ours = ours_caller(torch, fwd, DECODE_SPEC)

    def flex_fn(st, lse=False):
        return lambda: flex(st["q"], st["k"], st["v"], scale=scale, enable_gqa=True, return_lse=lse)

    def sdpa_fn(st, backend, expanded):
        if expanded:  # K/V materialised per query head: reads group x the bytes
            g = Hq // Hkv
            k_e, v_e = st["k"].repeat_interleave(g, dim=1), st["v"].repeat_interleave(g, dim=1)

            def go():
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(st["q"], k_e, v_e, scale=scale)
            return go

        def go():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(st["q"], st["k"], st["v"], scale=scale, enable_gqa=True)
        return go

    # Reference on set 0: FlexAttention (out and LSE), else any SDPA (out only).
    st = sets[0]
    ref = ref_lse = None
    try:
        ref, ref_lse = flex_fn(st, lse=True)()
        row["reference"] = "flex"
    except Exception as e:
        row["flex_error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        print("  flex unavailable: %s" % row["flex_error"])
        try:
            ref = F.scaled_dot_product_attention(st["q"], st["k"], st["v"], scale=scale, enable_gqa=True)
        except Exception:
            g = Hq // Hkv
            ref = F.scaled_dot_product_attention(st["q"], st["k"].repeat_interleave(g, dim=1),
                                                 st["v"].repeat_interleave(g, dim=1), scale=scale)
        row["reference"] = "sdpa"
    out = torch.full_like(st["q"], float("nan"))
    lse = torch.full((Bd, Hq, Sq), float("nan"), dtype=torch.float32, device="cuda")
    kg_abi.call(fwd, st["q"], st["k"], st["v"], out, lse, scale, plist, tlist)
    torch.cuda.synchronize()
    ok, msg, max_err = kg_abi.compare(out, ref, lse, ref_lse, mods.DTYPE)
    row.update(correct=ok, max_abs_err_vs_ref=max_err, check_message=msg)
    print("  check vs %s: %s, max |diff| %.3g %s" % (row["reference"], "ok" if ok else "WRONG", max_err, msg))
    del out, lse, ref, ref_lse

    impls = [("ours", [ours(s) for s in sets])]
    if "flex_error" not in row:
        impls.append(("flex", [flex_fn(s) for s in sets]))
    if not args.no_sdpa and sdpa_kernel is not None:
        for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION)):
            errors = []
            for expanded in (False, True):
                try:
                    fns = [sdpa_fn(s, backend, expanded) for s in sets]
                    fns[0]()
                    torch.cuda.synchronize()
                    impls.append((name, fns))
                    row[name + "_gqa"] = "expanded K/V" if expanded else "enable_gqa"
                    break
                except Exception as e:
                    errors.append("%s%s: %s" % ("expanded: " if expanded else "", type(e).__name__,
                                                str(e).splitlines()[0] if str(e) else ""))
            else:
                row[name + "_error"] = "; ".join(errors)
                print("  %s unavailable: %s" % (name, row[name + "_error"]))

    for name, fns in impls:
        try:
            t = timer.time(fns)
        except Exception as e:
            row[name + "_error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            print("  %-10s n/a: %s" % (name, row[name + "_error"]))
            continue
        row[name] = t
        t["tbs"] = nbytes / (t["median_ms"] * 1e-3) / 1e12
        if row["hbm_peak_tbs"]:
            t["hbm_fraction"] = t["tbs"] / row["hbm_peak_tbs"]
        if t["median_ms"] < floor_ms:
            t["suspect"] = "faster than the bandwidth floor (%.3f ms)" % floor_ms
        print("  %-10s median %.3f ms (min %.3f, max %.3f), %.2f TB/s%s%s" % (
            name, t["median_ms"], t["min_ms"], t["max_ms"], t["tbs"],
            " (%.0f%% of HBM peak)" % (100 * t["hbm_fraction"]) if "hbm_fraction" in t else "",
            " SUSPECT" if "suspect" in t else ""), flush=True)
    if row["correct"] and "ours" in row and "sdpa_cudnn" in row:
        row["speed_ours_over_cudnn"] = row["sdpa_cudnn"]["median_ms"] / row["ours"]["median_ms"]


def markdown_decode(rows):
    def ms(r, k):
        t = r.get(k)
        if t:
            return "%.3f" % t["median_ms"] + (" (exp.)" if r.get(k + "_gqa") == "expanded K/V" else "")
        return "n/a" if r.get(k + "_error") else ""

    def tbs(r, k):
        t = r.get(k)
        return "%.2f" % t["tbs"] if t else ""

    lines = ["| B | Sq | Skv | Hq/Hkv | D | ours ms | ours TB/s | ours % of HBM | cuDNN ms | cuDNN TB/s | flash ms "
             "| Flex ms | ours/cuDNN ms | speed vs cuDNN | max err vs ref |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = "| %d | %d | %d | %d/%d | %d " % (r["B"], r["Sq"], r["Skv"], r["Hq"], r["Hkv"], r["D"])
        if r.get("error"):
            lines.append(head + "| ERROR: %s ||||||||||" % r["error"][:80])
            continue
        o, c = r.get("ours"), r.get("sdpa_cudnn")
        frac = "%.0f%%" % (100 * o["hbm_fraction"]) if o and "hbm_fraction" in o else ""
        ratio_ms = "%.2f" % (o["median_ms"] / c["median_ms"]) if o and c else ""
        speed = ("%.2fx" % r["speed_ours_over_cudnn"] if "speed_ours_over_cudnn" in r
                 else ("WRONG" if not r.get("correct") else ""))
        ours = ms(r, "ours") + (" SUSPECT" if (o or {}).get("suspect") else "")
        lines.append(head + "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2g |" % (
            ours, tbs(r, "ours"), frac, ms(r, "sdpa_cudnn"), tbs(r, "sdpa_cudnn"), ms(r, "sdpa_flash"),
            ms(r, "flex"), ratio_ms, speed, r.get("max_abs_err_vs_ref", float("nan"))))
    peak = rows[0].get("hbm_peak_tbs") if rows else 0
    lines.append("")
    lines.append("Decode: spec %s, bf16, GQA %d/%d heads. TB/s = bytes of K+V+Q+O / median time; %% of HBM against "
                 "%s TB/s. ours/cuDNN ms < 1 and speed vs cuDNN > 1: ours is faster. (exp.): that backend ran with "
                 "K/V expanded to the query heads. n/a: the backend failed (reason in the log and the JSON)."
                 % (DECODE_SPEC, DECODE_HQ, DECODE_HKV, ("%.2f" % peak) if peak else "an unknown"))
    return "\n".join(lines)


def markdown(rows):
    def ms(r, k):
        t = r.get(k)
        return "%.3f" % t["median_ms"] if t else ""

    def tf(r, k):
        t = r.get(k)
        return "%.0f" % t["tflops"] if t else ""

    def peak(r, k):
        t = r.get(k)
        return "%.0f%%" % (100.0 * t["tflops"] / PEAK_TFLOPS) if t else ""

    def vs(r, k):
        o, t = r.get("ours"), r.get(k)
        return "%.2fx" % (t["median_ms"] / o["median_ms"]) if o and t and r.get("correct") else ""

    lines = ["| variant | S | D | unmasked (exact) | ours ms | ours TFLOP/s | ours % of peak | Flex ms | Flex TFLOP/s "
             "| SDPA flash ms | SDPA cuDNN ms | speed ours/Flex | speed ours/cuDNN | max err vs Flex |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error"):
            lines.append("| %s | %d | %d | ERROR: %s |||||||||||" % (r["label"], r["S"], r["D"], r["error"][:80]))
            continue
        ratio = "%.2fx" % r["speed_ours_over_flex"] if "speed_ours_over_flex" in r else ("WRONG" if not r.get("correct") else "")
        ours = ms(r, "ours") + (" SUSPECT" if r.get("ours", {}).get("suspect") else "")
        lines.append("| %s | %d | %d | %.4f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2g |" % (
            r["label"], r["S"], r["D"], r.get("unmasked_fraction", float("nan")), ours, tf(r, "ours"), peak(r, "ours"),
            ms(r, "flex"), tf(r, "flex"), ms(r, "sdpa_flash"), ms(r, "sdpa_cudnn"), ratio, vs(r, "sdpa_cudnn"),
            r.get("max_abs_err_vs_flex", float("nan"))))
    lines.append("")
    lines.append("B=%d, H=%d (GQA rows: the heads they name), bf16 unless the row says fp16, Sq=Skv=S. Median of "
                 "CUDA-event times, L2 flushed, rotating input sets. TFLOP/s count 4*B*Hq*S*S*D times the exact "
                 "unmasked fraction; %% of peak against %.0f TFLOP/s (dense bf16/fp16, H100/H200 SXM datasheet). "
                 "speed > 1: ours is faster. SDPA only where its semantics match (full, causal)." % (B, H, PEAK_TFLOPS))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

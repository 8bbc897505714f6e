#!/usr/bin/env python3
"""Where a kernel's warps stall, from Nsight Compute's per-instruction source counters.

On the GPU machine (a kernel from a same-process A/B build, see bench/ab_so.py):

    ncu --clock-control none -k regex:sm90 -c 1 --import-source no --section WarpStateStats \\
        --section SourceCounters -o prof python3 bench/ab_so.py --spec full --seqs 4096 --runs 1 -- a=a.so
    ncu -i prof.ncu-rep --page source --csv --print-source sass | gzip > prof.csv.gz

then anywhere:

    bench/ncu_source.py prof.csv.gz                 # runs of instructions by execution count, top stalls
    bench/ncu_source.py prof.csv.gz --range 43a0 5c00   # one address range: stall reasons and opcodes

Instructions that execute equally often form one run: in the sm_90a kernel the consumers' loop
body, the producer's loop body and the prologues each show up as a few runs, so the sample counts
per run say which role and which stage (MMA issue, softmax, loads) the time goes to. Addresses
are offsets from the kernel's first instruction, in hex.
"""
import argparse
import collections
import csv
import gzip
import sys


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    # The first line names the kernel; the second is the header.
    for i, row in enumerate(rows):
        if "Address" in row and "Source" in row:
            return rows[i], rows[i + 1:]
    sys.exit(f"ncu_source: {path}: no 'Address'/'Source' header (want --page source --csv --print-source sass)")


def number(s):
    try:
        return int(s.replace(",", ""))
    except ValueError:
        return 0


def opcode(src):
    words = src.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return words[0].split(".")[0] if words else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="ncu --page source --csv --print-source sass output (.gz or plain)")
    ap.add_argument("--range", nargs=2, metavar=("LO", "HI"), help="hex offsets: detail this range")
    ap.add_argument("--min-exec", type=int, default=1000, help="runs executed fewer times are not listed")
    ap.add_argument("--top", type=int, default=25, help="instructions listed by samples")
    args = ap.parse_args()

    header, rows = load(args.csv)
    col = {name: i for i, name in enumerate(header)}
    samples_col = col.get("Warp Stall Sampling (All Samples)")
    exec_col = col.get("Instructions Executed")
    if samples_col is None or exec_col is None:
        sys.exit("ncu_source: the report has no stall sampling or execution counts (add --section SourceCounters)")
    stall_cols = [(name[len("stall_"):], i) for name, i in col.items()
                  if name.startswith("stall_") and "Not Issued" not in name]
    base = int(rows[0][col["Address"]], 16)
    insts = []
    for r in rows:
        insts.append({
            "off": int(r[col["Address"]], 16) - base,
            "src": r[col["Source"]].strip(),
            "samples": number(r[samples_col]),
            "exec": number(r[exec_col]),
            "stalls": {name: number(r[i]) for name, i in stall_cols},
        })
    total = sum(x["samples"] for x in insts)
    print(f"{len(insts)} instructions, {total} samples")

    if args.range:
        lo, hi = (int(a, 16) for a in args.range)
        part = [x for x in insts if lo <= x["off"] <= hi]
        reasons = collections.Counter()
        ops = collections.Counter()
        for x in part:
            reasons.update(x["stalls"])
            ops[opcode(x["src"])] += x["samples"]
        n = sum(x["samples"] for x in part)
        print(f"range {lo:05x}-{hi:05x}: {len(part)} instructions, {n} samples ({100 * n / max(total, 1):.1f} %)")
        print("  stall reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common(8) if v))
        print("  samples by opcode: " + ", ".join(f"{k} {v}" for k, v in ops.most_common(10) if v))
        return 0

    print("\nruns of equally executed instructions (executions, instructions, samples, share, opcodes):")
    run = None
    runs = []
    for x in insts:
        if run is None or run["exec"] != x["exec"]:
            run = {"lo": x["off"], "hi": x["off"], "exec": x["exec"], "n": 0, "samples": 0, "ops": collections.Counter()}
            runs.append(run)
        run["hi"] = x["off"]
        run["n"] += 1
        run["samples"] += x["samples"]
        run["ops"][opcode(x["src"])] += 1
    for r in runs:
        if r["exec"] >= args.min_exec and r["samples"] > 0:
            ops = " ".join(f"{k}:{v}" for k, v in r["ops"].most_common(6))
            print(f"  {r['lo']:05x}-{r['hi']:05x} {r['exec']:>9} {r['n']:>5} {r['samples']:>7} "
                  f"{100 * r['samples'] / max(total, 1):5.1f} %  {ops}")

    print(f"\ntop {args.top} instructions by samples (offset, samples, executions, main stall reasons):")
    for x in sorted(insts, key=lambda x: -x["samples"])[:args.top]:
        top = ", ".join(f"{k} {v}" for k, v in sorted(x["stalls"].items(), key=lambda kv: -kv[1])[:2] if v)
        print(f"  {x['off']:05x} {x['samples']:>6} {x['exec']:>9}  {x['src'][:64]:<64} {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The daemon and the client, timed (docs/benchmarks.md, "kernelgen and kernelgend").

    bench/daemon_bench.py <kernelgen> [--runs N] [--parallel P]

Runs in a private cache and runtime directory, and measures:
  1. the hit path without the daemon: whole `kernelgen emit` processes on a cache hit, every spec
     in specs/, N runs each (no daemon running: the hit path never touches the socket);
  2. a generate request answered by the daemon from its cache: round trip on one connection
     (request written to result read), N * 20 times, and with a new connection per request
     (connect + greeting + request), from a small Python client;
  3. P parallel requests: P connections at once asking for cached kernels; P distinct new specs
     generated at once over the socket; P parallel `kernelgen emit` processes of new specs.
"""
import json
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame(obj):
    data = json.dumps(obj).encode()
    return struct.pack("<I", len(data)) + data


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def recv_msg(s):
    (n,) = struct.unpack("<I", recv_exact(s, 4))
    return json.loads(recv_exact(s, n))


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    hello = recv_msg(s)
    assert hello["type"] == "hello", hello
    return s


def generate(s, spec_text, file):
    s.sendall(frame({"type": "generate", "spec": spec_text, "file": file, "arch": "sm_90a"}))
    while True:
        m = recv_msg(s)
        if m["type"] == "result":
            return m
        if m["type"] == "error":
            raise RuntimeError(m)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]


def spec_text(i):
    return (f"name: bench{i}\ndtype: bf16\nhead_dim: 64\nconstants:\n  W: {i + 1}\n"
            "mask_mod: q_idx >= kv_idx and q_idx - kv_idx < W\n")


def main():
    kg = os.path.abspath(sys.argv[1])
    runs, parallel = 30, 200
    args = sys.argv[2:]
    while args:
        if args[0] == "--runs":
            runs, args = int(args[1]), args[2:]
        elif args[0] == "--parallel":
            parallel, args = int(args[1]), args[2:]
        else:
            sys.exit(f"unknown argument {args[0]}")
    work = tempfile.mkdtemp()
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=os.path.join(work, "run"), KERNELGEN_CACHE_DIR=os.path.join(work, "cache"),
               KERNELGEN_IDLE_TIMEOUT="600")
    for k in ("KERNELGEN_LOG", "KERNELGEN_NO_DAEMON", "KERNELGEN_TEST_JOB_DELAY_MS", "KERNELGEN_TEST_JOB_GATE",
              "KERNELGEN_TEST_JOB_THROW", "KERNELGEN_DAEMON_TIMEOUT", "KERNELGEN_DAEMON_SILENCE_TIMEOUT"):
        env.pop(k, None)
    os.mkdir(env["XDG_RUNTIME_DIR"], 0o700)

    def kgrun(*a, **kw):
        return subprocess.run([kg, *a], env=env, check=True, stdout=subprocess.PIPE, **kw)

    try:
        specs = sorted(os.path.join(ROOT, "specs", f) for f in os.listdir(os.path.join(ROOT, "specs"))
                       if f.endswith(".yaml"))
        out = os.path.join(work, "out")
        for spec in specs:  # fill the cache (through the daemon)
            kgrun("emit", "--spec", spec, "--out-dir", out)
        status = json.loads(kgrun("daemon", "status", "--json").stdout)
        sock = status["socket"]
        jobs_limit = status["jobs_limit"]
        kgrun("daemon", "stop")

        # 1. hit path, whole process, no daemon
        medians = []
        for spec in specs:
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                kgrun("emit", "--spec", spec, "--out-dir", out)
                times.append((time.perf_counter() - t0) * 1e3)
            medians.append((os.path.basename(spec), statistics.median(times), pct(times, 0.9)))
        running = subprocess.run([kg, "daemon", "status"], env=env, stdout=subprocess.DEVNULL).returncode == 0
        assert not running, "a hit started the daemon"

        # 2. a cached key answered by the daemon
        kgrun("daemon", "start")
        text = open(specs[0]).read()
        s = connect(sock)
        generate(s, text, specs[0])  # warm
        rtt = []
        for _ in range(runs * 20):
            t0 = time.perf_counter()
            r = generate(s, text, specs[0])
            rtt.append((time.perf_counter() - t0) * 1e3)
            assert r["ok"] and r["outcome"] == "cache_hit", r
        s.close()
        fresh = []
        for _ in range(runs * 5):
            t0 = time.perf_counter()
            c = connect(sock)
            r = generate(c, text, specs[0])
            c.close()
            fresh.append((time.perf_counter() - t0) * 1e3)
            assert r["ok"]

        # 3a. P connections at once, cached kernels
        def burst(texts):
            results = [None] * len(texts)
            start = threading.Barrier(len(texts) + 1)

            def one(i):
                c = connect(sock)
                start.wait()
                results[i] = generate(c, texts[i], f"bench{i}.yaml")
                c.close()

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
            for t in threads:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            return time.perf_counter() - t0, results

        cached_texts = [open(specs[i % len(specs)]).read() for i in range(parallel)]
        cached_wall, cached_res = burst(cached_texts)
        cached_ok = sum(1 for r in cached_res if r and r["ok"])
        # 3b. P distinct new specs at once over the socket
        new_wall, new_res = burst([spec_text(i) for i in range(parallel)])
        new_ok = sum(1 for r in new_res if r and r["ok"])
        gens = json.loads(kgrun("daemon", "status", "--json").stdout)["stats"]["generations"]
        # 3c. P parallel `kernelgen emit` processes of new specs (as a build would run them)
        sdir = os.path.join(work, "specs")
        os.mkdir(sdir)
        files = []
        for i in range(parallel):
            f = os.path.join(sdir, f"p{i}.yaml")
            with open(f, "w") as fh:
                fh.write(spec_text(10000 + i).replace(f"bench{10000 + i}", f"p{i}"))
            files.append(f)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([kg, "emit", "--spec", f, "--out-dir", os.path.join(work, "pout")], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]
        codes = [p.wait() for p in procs]
        emit_wall = time.perf_counter() - t0
        emit_ok = codes.count(0)
        kgrun("daemon", "stop")
    finally:
        subprocess.run([kg, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"daemon: {jobs_limit} generation jobs at once")
    print()
    print(f"1. hit path without the daemon, whole `kernelgen emit` process, {runs} runs per spec")
    print("| spec | median ms | p90 ms |")
    print("|---|---|---|")
    for name, med, p90 in medians:
        print(f"| {name} | {med:.2f} | {p90:.2f} |")
    print(f"| **median of medians** | **{statistics.median(m[1] for m in medians):.2f}** | |")
    print()
    print("2. generate for a cached key, answered by the daemon (Python client)")
    print("| measure | n | median ms | p90 ms | p99 ms |")
    print("|---|---|---|---|---|")
    print(f"| round trip on an open connection | {len(rtt)} | {statistics.median(rtt):.3f} | {pct(rtt, 0.9):.3f} | "
          f"{pct(rtt, 0.99):.3f} |")
    print(f"| connect + greeting + round trip | {len(fresh)} | {statistics.median(fresh):.3f} | "
          f"{pct(fresh, 0.9):.3f} | {pct(fresh, 0.99):.3f} |")
    print()
    print(f"3. {parallel} parallel requests")
    print("| what | wall s | ok |")
    print("|---|---|---|")
    print(f"| {parallel} connections at once, cached kernels | {cached_wall:.3f} | {cached_ok}/{parallel} |")
    print(f"| {parallel} connections at once, {parallel} new specs generated | {new_wall:.3f} | {new_ok}/{parallel} "
          f"({gens} generations) |")
    print(f"| {parallel} `kernelgen emit` processes at once, new specs | {emit_wall:.3f} | {emit_ok}/{parallel} |")
    return 0 if cached_ok == new_ok == emit_ok == parallel else 1


if __name__ == "__main__":
    sys.exit(main())

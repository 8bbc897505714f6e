#!/usr/bin/env python3
"""Throws malformed, oversized, truncated and random frames at a running kernelgend and checks
after each that it still answers `status` on a new connection (docs/protocol.md §2).

    protocol_fuzz.py <socket> [--seed N] [--random K]

Exit status 0 when the daemon survived everything with the same pid, 1 otherwise.
"""
import json
import os
import random
import socket
import struct
import sys
import time

MAX = 16 << 20


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_msg(s):
    head = recv_exact(s, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = recv_exact(s, n)
    return None if body is None else json.loads(body)


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def status(path):
    s = connect(path)
    hello = recv_msg(s)
    assert hello and hello["type"] == "hello", hello
    s.sendall(frame(b'{"type":"status"}'))
    st = recv_msg(s)
    s.close()
    assert st and st["type"] == "status", st
    return st


def attack(path, name, data, expect_error=None, half_close=True):
    """Sends `data` after the greeting; returns the error code the daemon answered, if any."""
    s = connect(path)
    recv_msg(s)  # hello
    try:
        s.sendall(data)
        if not half_close:  # a client that sends and vanishes
            s.close()
            return None
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = None
    try:
        while True:
            m = recv_msg(s)
            if m is None:
                break
            if m.get("type") == "error":
                got = m["code"]
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    if expect_error is not None and got != expect_error:
        raise AssertionError(f"{name}: expected error {expect_error}, got {got}")
    return got


def main():
    path = sys.argv[1]
    seed = 1
    n_random = 200
    args = sys.argv[2:]
    while args:
        if args[0] == "--seed":
            seed = int(args[1])
            args = args[2:]
        elif args[0] == "--random":
            n_random = int(args[1])
            args = args[2:]
        else:
            sys.exit(f"unknown argument {args[0]}")
    rng = random.Random(seed)
    pid = status(path)["pid"]
    cases = [
        ("empty frame", struct.pack("<I", 0), "frame_empty"),
        ("oversized length", struct.pack("<I", MAX + 1), "frame_too_large"),
        ("length 0xffffffff", b"\xff\xff\xff\xff", "frame_too_large"),
        ("not JSON", frame(b"hello there"), "bad_json"),
        ("JSON array", frame(b"[1,2,3]"), "bad_json"),
        ("JSON string", frame(b'"generate"'), "bad_json"),
        ("trailing garbage", frame(b'{"type":"status"} x'), "bad_json"),
        ("invalid UTF-8", frame(b'{"type":"\xff\xfe"}'), None),
        ("deep nesting", frame(b"[" * 200000), "bad_json"),
        ("deep object nesting", frame(b'{"a":' * 100000), "bad_json"),
        ("no type", frame(b'{"spec":"x"}'), "bad_request"),
        ("type not a string", frame(b'{"type":42}'), "bad_request"),
        ("unknown type", frame(b'{"type":"format_disk"}'), "unknown_request"),
        ("generate without spec", frame(b'{"type":"generate"}'), "bad_request"),
        ("spec not a string", frame(b'{"type":"generate","spec":{"a":1}}'), "bad_request"),
        ("options not an object", frame(b'{"type":"generate","spec":"x","options":1}'), "bad_request"),
        ("verify not a bool", frame(b'{"type":"generate","spec":"x","options":{"verify":1}}'), "bad_request"),
        ("truncated header", b"\x10\x00", None),
        ("truncated payload", struct.pack("<I", 100) + b'{"type":', None),
        ("header only", struct.pack("<I", 50), None),
        ("NUL bytes", frame(b"\x00" * 64), "bad_json"),
    ]
    failures = 0
    for name, data, code in cases:
        try:
            attack(path, name, data, code)
            status(path)
        except Exception as e:  # noqa: BLE001 - report every case
            print(f"FAIL {name}: {e!r}")
            failures += 1
    # Requests the daemon must answer with a result (not an error), connection kept.
    s = connect(path)
    recv_msg(s)
    for spec in ["", "name: [unclosed", "\x00\x01\x02", "name: x\ndtype: bf16\nhead_dim: 7\n", "a" * (8 << 20)]:
        s.sendall(frame(json.dumps({"type": "generate", "spec": spec, "file": "fuzz.yaml"}).encode()))
        r = recv_msg(s)
        if not r or r.get("type") != "result" or r.get("ok"):
            print(f"FAIL bad spec {spec[:20]!r}: {r!r}")
            failures += 1
    s.sendall(frame(b'{"type":"generate","spec":"x","arch":"sm_9"}'))
    r = recv_msg(s)
    if not r or r.get("type") != "result" or r.get("ok") or "sm_9" not in r.get("error", ""):
        print(f"FAIL bad arch: {r!r}")
        failures += 1
    s.close()
    # A slow sender that stalls inside a frame, and a client that connects and vanishes.
    s = connect(path)
    recv_msg(s)
    s.sendall(struct.pack("<I", 30) + b'{"ty')
    s2 = connect(path)
    s2.close()
    status(path)
    s.close()
    # Random bytes, random lengths, sometimes behind a plausible header.
    for i in range(n_random):
        n = rng.choice([1, 3, 4, 5, 17, 256, 4096, 70000])
        data = bytes(rng.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096 + 1)
        data = data[:n]
        if rng.random() < 0.5:
            data = struct.pack("<I", len(data)) + data
        try:
            attack(path, f"random {i}", data, None, half_close=rng.random() < 0.7)
            if i % 20 == 0:
                status(path)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL random case {i} (seed {seed}): {e!r}")
            failures += 1
    # Many connections at once, all abandoned mid-frame.
    held = []
    for _ in range(100):
        c = connect(path)
        c.sendall(b"\x05\x00")
        held.append(c)
    status(path)
    for c in held:
        c.close()
    time.sleep(0.2)
    final = status(path)
    if final["pid"] != pid:
        print(f"FAIL the daemon was replaced: pid {pid} -> {final['pid']}")
        failures += 1
    print(f"protocol fuzz: {len(cases)} crafted cases, {n_random} random, seed {seed}: "
          f"{failures} failures; daemon pid {pid} still answering")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

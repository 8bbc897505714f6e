#!/usr/bin/env python3
"""Raw protocol clients for tests/daemon/daemon_test.sh: what kernelgen never sends, or waits for
what kernelgen does not show. Each waits for events (frames, end of stream), never for a time;
the socket timeout is only a backstop that turns a hang into a failure.

    raw_client.py <socket> heartbeats <spec-file> <gate-file> N
        sends generate for the spec, waits for N progress heartbeats of the stage "generating"
        (the job is held by the daemon's KERNELGEN_TEST_JOB_GATE), then creates the gate file and
        expects an ok result
    raw_client.py <socket> idle-closed
        greets and sends nothing; passes when the daemon closes the connection
    raw_client.py <socket> hold N
        opens N connections, reads their greetings, prints "holding" and keeps them open until
        killed
    raw_client.py <socket> hostile <spec-file>
        requests whose fields are out of bounds or carry control bytes; checks each answer

Exit status 0 when every check passed; failures are printed.
"""
import json
import socket
import struct
import sys
import time

BACKSTOP_S = 60


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(BACKSTOP_S)
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


def send_raw(s, payload: bytes):
    s.sendall(struct.pack("<I", len(payload)) + payload)


def send(s, obj):
    send_raw(s, json.dumps(obj).encode())


def greeted(path):
    s = connect(path)
    hello = recv_msg(s)
    assert hello and hello["type"] == "hello", hello
    return s


def heartbeats(path, spec_file, gate, n):
    s = greeted(path)
    send(s, {"type": "generate", "spec": open(spec_file).read(), "file": spec_file})
    beats = 0
    while beats < int(n):
        m = recv_msg(s)
        assert m and m["type"] == "progress", m
        if m["stage"] == "generating":
            beats += 1
    open(gate, "w").close()
    while True:
        m = recv_msg(s)
        assert m, "the connection ended without a result"
        if m["type"] == "result":
            assert m["ok"], m
            print(f"{beats} progress events of the stage 'generating' before the gate opened")
            return 0


def idle_closed(path):
    s = greeted(path)
    try:
        data = s.recv(1)
    except socket.timeout:
        print(f"the daemon kept an idle connection open for {BACKSTOP_S} s")
        return 1
    except ConnectionResetError:
        data = b""
    if data:
        print(f"unexpected data on an idle connection: {data!r}")
        return 1
    return 0


def hold(path, n):
    conns = [greeted(path) for _ in range(int(n))]
    print("holding", flush=True)
    while True:
        time.sleep(3600)
    del conns


def result_of(path, request_bytes):
    s = greeted(path)
    send_raw(s, request_bytes)
    while True:
        m = recv_msg(s)
        if m is None or m["type"] in ("result", "error"):
            return m


def hostile(path, spec_file):
    spec = open(spec_file).read()
    failures = 0

    def expect(name, cond, got):
        nonlocal failures
        if not cond:
            failures += 1
            print(f"FAIL {name}: {got}")

    big = {"type": "generate", "spec": "x" * ((1 << 20) + 1), "file": "big.yaml"}
    m = result_of(path, json.dumps(big).encode())
    expect("an oversized spec is refused in the result", m and m["type"] == "result" and not m["ok"]
           and "the spec is 1048577 bytes; the limit is 1048576" in m["error"], m)
    m = result_of(path, json.dumps({"type": "generate", "spec": spec, "file": "f" * 5000}).encode())
    expect("an oversized file name is refused", m and not m.get("ok", True) and "the file name" in m["error"], m)
    m = result_of(path, json.dumps({"type": "generate", "spec": spec, "arch": "9" * 200}).encode())
    expect("an oversized arch is refused", m and not m.get("ok", True) and "the architecture" in m["error"], m)
    m = result_of(path, json.dumps({"type": "generate", "spec": spec, "arch": "sm_75"}).encode())
    expect("sm_75 is refused at the door", m and m["type"] == "result" and not m["ok"]
           and "the template kernels need sm_80 or newer" in m["error"], m)
    evil = "evil\x1b[2J\r\nFAKE LOG LINE.yaml"
    m = result_of(path, json.dumps({"type": "generate", "spec": "name: [", "file": evil}).encode())
    expect("control bytes in a file name are escaped in the error",
           m and not m["ok"] and "\x1b" not in m["error"] and "\r" not in m["error"]
           and "evil\\x1b[2J\\x0d\\x0aFAKE LOG LINE.yaml" in m["error"], m)
    m = result_of(path, json.dumps({"type": "generate", "spec": "name: a\x1bb\ndtype: bf16\nhead_dim: 64\n"}).encode())
    expect("control bytes from a spec are escaped in its diagnostics", m and not m["ok"] and "\x1b" not in m["error"], m)
    deep = b'{"type":"status","x":' + b"[" * 100000 + b"]" * 100000 + b"}"
    m = result_of(path, deep)
    expect("deep nesting is bad_json", m and m["type"] == "error" and m["code"] == "bad_json", m)
    wide = b'{"type":"status","x":[' + b"1," * 100000 + b"1]}"
    m = result_of(path, wide)
    expect("a huge value count is bad_json", m and m["type"] == "error" and m["code"] == "bad_json", m)
    m = result_of(path, json.dumps({"type": "\x1b[31m" + "t" * 100000}).encode())
    expect("an unknown type is echoed bounded and escaped", m and m["code"] == "unknown_request"
           and len(m["message"]) < 200 and "\x1b" not in m["message"], m)
    return 1 if failures else 0


def main():
    path, mode = sys.argv[1:3]
    args = sys.argv[3:]
    return {"heartbeats": heartbeats, "idle-closed": idle_closed, "hold": hold, "hostile": hostile}[mode](path, *args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A fake kernelgend on a socket path, for the client's timeout tests (tests/daemon/daemon_test.sh).

    fake_daemon.py <socket> <mode> <version>

Modes:
  silent  accepts connections and never sends anything (a daemon that never greets)
  mute    greets like the real daemon, reads the request, then sends nothing more
  stream  greets, reads the request, then sends progress events forever and never a result

The greeting claims <version> and the config id in the socket's name (kgd-<config>.sock), so the
client accepts it. Prints "ready" once it listens; runs until killed.
"""
import json
import os
import socket
import struct
import sys
import threading
import time


def frame(obj):
    payload = json.dumps(obj).encode()
    return struct.pack("<I", len(payload)) + payload


def serve(conn, mode, hello):
    try:
        if mode == "silent":
            while conn.recv(4096):
                pass
            return
        conn.sendall(frame(hello))
        conn.recv(1 << 20)  # the request
        if mode == "mute":
            while conn.recv(4096):
                pass
            return
        elapsed = 0
        while True:
            conn.sendall(frame({"type": "progress", "key": "0" * 32, "stage": "generating",
                                "message": "generating forever", "elapsed_ms": elapsed}))
            elapsed += 100
            time.sleep(0.1)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    path, mode, version = sys.argv[1:4]
    config = os.path.basename(path)[len("kgd-"):-len(".sock")]
    hello = {"type": "hello", "program": "kernelgend", "protocol": 1, "version": version,
             "generator": "", "verifier": "", "config": config, "pid": os.getpid()}
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, mode, hello), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Edits a kernelgen LMDB cache behind kernelgen's back, as damage or a hostile writer would, for
the shell tests (tests/cli/cache_verify_test.sh). Uses mdb_dump / mdb_load (lmdb-utils) and
libxxhash (XXH3-128, the cache's digest) through ctypes; no kernelgen code.

  cache_edit.py DIR blob FILE                 store FILE's bytes as a blob; prints its digest
  cache_edit.py DIR corrupt DIGEST            change the bytes stored under DIGEST (same digest)
  cache_edit.py DIR record KEY FIELD=VALUE... rewrite fields of the record KEY (VALUE as a string)
  cache_edit.py DIR show KEY FIELD            print one field of the record KEY

Run it only while no kernelgen process has the cache open.
"""
import ctypes
import json
import subprocess
import sys


class _H(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_128bits.restype = _H
_xxh.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def digest(data: bytes) -> str:
    h = _xxh.XXH3_128bits(data, len(data))
    return "%016x%016x" % (h.high64, h.low64)


def dump(directory: str, db: str):
    """(header lines, {key bytes: value bytes}) of one named database."""
    text = subprocess.run(["mdb_dump", "-s", db, directory], check=True, capture_output=True, text=True).stdout
    lines = text.split("\n")
    end = lines.index("HEADER=END")
    # Older mdb_load builds do not know every header keyword mdb_dump writes.
    header = [l for l in lines[: end + 1] if not l.startswith("db_pagesize=")]
    entries = {}
    body = lines[end + 1 :]
    for i in range(0, len(body) - 1, 2):
        if not body[i].startswith(" "):
            break
        entries[bytes.fromhex(body[i].strip())] = bytes.fromhex(body[i + 1].strip())
    return header, entries


def load(directory: str, db: str, header, entries) -> None:
    """Writes `entries` (replacing what is under their keys) into one named database."""
    lines = list(header)
    for k, v in entries.items():
        lines += [" " + k.hex(), " " + v.hex()]
    lines += ["DATA=END", ""]
    subprocess.run(["mdb_load", "-s", db, directory], input="\n".join(lines), check=True, text=True)


def main(argv) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    directory, what = argv[1], argv[2]
    if what == "blob":
        data = open(argv[3], "rb").read()
        header, _ = dump(directory, "cas")
        d = digest(data)
        load(directory, "cas", header, {d.encode(): data})
        print(d)
        return 0
    if what == "corrupt":
        header, entries = dump(directory, "cas")
        key = argv[3].encode()
        if key not in entries:
            print("no blob " + argv[3], file=sys.stderr)
            return 1
        load(directory, "cas", header, {key: entries[key] + b"\n// tampered\n"})
        return 0
    if what in ("record", "show"):
        header, entries = dump(directory, "ac")
        key = argv[3].encode()
        if key not in entries:
            print("no record " + argv[3], file=sys.stderr)
            return 1
        record = json.loads(entries[key])
        if what == "show":
            print(record.get(argv[4], ""))
            return 0
        for assignment in argv[4:]:
            field, _, value = assignment.partition("=")
            record[field] = value
        load(directory, "ac", header, {key: json.dumps(record).encode()})
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env bash
# `kernelgen report`: the page it writes, opened in headless Chromium (Debian's `chromium`, a test
# dependency: scripts/install-deps.sh). Checks what the browser built from the page (the DOM),
# that the page asked for nothing over the network (Chromium's net log), that it paints (a
# screenshot), and the command's cache path and errors.
#   tests/cli/report_chromium.sh <kernelgen> <source-dir>
# KG_CHROMIUM names another browser binary. A missing browser is a failure, not a skip.
# KG_KEEP=1 keeps the work directory (pages, DOMs, net logs, screenshot) for a look.
set -uo pipefail
kg=$1
src=$2
work=$(mktemp -d)
trap '[[ -n "${KG_KEEP:-}" ]] || rm -rf "$work"' EXIT
export KERNELGEN_CACHE_DIR=$work/cache
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset KERNELGEN_LOG

chromium=${KG_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z "$chromium" || ! -x "$chromium" ]]; then
  echo "FAIL: chromium not found: this test opens the report page in headless Chromium." >&2
  echo "      Install it with scripts/install-deps.sh (Debian package 'chromium'), or set KG_CHROMIUM." >&2
  exit 1
fi

source "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
run() {  # run EXPECTED_EXIT CMD...: captures stdout/stderr in $out/$err, checks the exit code
  local want=$1
  shift
  "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  out=$(cat "$work/stdout")
  err=$(cat "$work/stderr")
  if [[ $rc != "$want" ]]; then
    echo "  '$*' exited $rc, expected $want; stderr: $err" >&2
    return 1
  fi
}

# browse PAGE NAME [EXTRA FLAGS...]: opens file://PAGE headless; the DOM goes to $work/NAME.dom,
# the net log to $work/NAME.netlog. Every host name resolves to nothing, so nothing can leave.
browse() {
  local page=$1 name=$2
  shift 2
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run --disable-sync \
    --disable-background-networking --disable-component-update --disable-extensions \
    --user-data-dir="$work/profile-$name" --host-resolver-rules="MAP * ~NOTFOUND" \
    --log-net-log="$work/$name.netlog" "$@" "file://$page" >"$work/$name.dom" 2>"$work/$name.chromium-err"
  local rc=$?
  if [[ $rc != 0 ]]; then
    echo "  chromium exited $rc on $page:" >&2
    tail -n 5 "$work/$name.chromium-err" >&2
  fi
  return $rc
}

# page_requests NETLOG: prints every URL the page itself asked for (Chromium's own background
# requests carry no origin: "not an origin").
page_requests() {
  python3 - "$1" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
for ev in log["events"]:
    p = ev.get("params", {})
    if names.get(ev["type"]) == "URL_REQUEST_START_JOB" and "url" in p and p.get("initiator") != "not an origin":
        if not p["url"].startswith("file:"):
            print(p["url"])
PY
}
no_page_requests() {
  local urls
  urls=$(page_requests "$1") || return 1
  [[ -z "$urls" ]] || { echo "  the page requested: $urls" >&2; return 1; }
}

# check_dom DOM CANDIDATES: the browser's DOM has every section, the plot's lines and one marker per
# candidate, and no script element.
check_dom() {
  python3 - "$1" "$2" <<'PY'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.classes, self.in_svg = set(), {}, [], 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "svg":
            self.in_svg += 1
        if self.in_svg and "class" in a:
            self.classes.append((tag, a["class"]))
    def handle_endtag(self, tag):
        if tag == "svg":
            self.in_svg -= 1
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
want = int(sys.argv[2])
errors = []
for i in ["summary", "plot", "rounds", "candidates", "prompts", "final-report", "plot-time", "plot-peak"]:
    if i not in p.ids:
        errors.append("no element with id " + i)
cands = [c for t, c in p.classes if t == "g" and c.split()[0] == "cand"]
if len(cands) != want:
    errors.append("%d candidate markers, expected %d" % (len(cands), want))
if not all(any(x.startswith("outcome-") for x in c.split()) for c in cands):
    errors.append("a marker without its outcome class")
for cls, tag in [("best", "path"), ("template", "line")]:
    if (tag, cls) not in p.classes:
        errors.append("no %s.%s in the svg" % (tag, cls))
if p.tags.get("script", 0):
    errors.append("%d script elements" % p.tags["script"])
if errors:
    print("  DOM: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
PY
}

# --- a realistic history: 3 rounds of 4 samples, mixed outcomes -----------------------------------
python3 - "$work/history.json" <<'PY'
import json, sys
report = lambda verdict, ms, findings: json.dumps({
    "schema": 2, "verdict": verdict, "spec_name": "causal", "arch": "sm_90a", "findings": findings,
    "stages": [{"name": "static", "status": "pass", "seconds": 0.01, "note": ""},
               {"name": "compile", "status": "pass", "seconds": 21.0, "note": ""}],
    "timing": {"measured": ms > 0, "median_ms": ms, "tflops": 310.0 if ms else 0, "peak_tflops": 989.0,
               "floor_ms": 0.061, "shape": "B=4 Hq=16 Hkv=16 Sq=4096 Skv=4096"},
    "ptxas": {"max_registers": 168, "total_spill_bytes": 0, "max_smem_bytes": 49152, "max_stack_bytes": 0,
              "functions": [{"name": "kg_causal_fwd", "registers": 168, "spill_bytes": 0}]}})
wrong = [{"kind": "wrong_output", "stage": "correctness", "message": "out[0,3,17,5] = 0.71, want 0.12",
          "trial": "ragged", "shape": "B=2 Hq=8 Hkv=2 Sq=65 Skv=63", "warning": False}]
plan = [  # round, outcome, time_ms, detail
    (1, "pass", 0.385, ""), (1, "rejected", 0, "wrong_output: out[0,3,17,5] = 0.71, want 0.12"),
    (1, "compile_error", 0, "nvcc: error: identifier \"__shfl_xor\" is undefined"), (1, "no_code", 0, "no ```cuda block"),
    (2, "pass", 0.331, ""), (2, "pass", 0.362, ""), (2, "llm_error", 0, "HTTP 429 after 3 attempts"),
    (2, "rejected", 0, "illegal_address: cudaErrorIllegalAddress in trial long_rows"),
    (3, "pass", 0.294, ""), (3, "cancelled", 0, "the budget ended"),
    (3, "rejected", 0, "below_physical_floor: 0.01 ms < 0.061 ms"), (3, "compile_error", 0, "ptxas: too many resources"),
]
hostile = "</pre><script>alert(1)</script></style><!-- <img src=\"http://evil.invalid/x.png\">"
cands, t = [], 0.0
for i, (r, outcome, ms, detail) in enumerate(plan):
    sample = i % 4
    start = (r - 1) * 200.0 + 2
    end = start + 60 + 25 * sample
    src = "#include <cuda_runtime.h>\n// candidate %d\nextern \"C\" int kg_causal_forward() { return 0; }\n" % i
    cands.append({
        "round": r, "sample": sample, "outcome": outcome, "detail": detail,
        "start_s": start, "answered_s": start + 40, "end_s": end, "model_s": 40.0,
        "compile_s": 0 if outcome in ("no_code", "llm_error") else 20.0, "compile_wait_s": 1.0,
        "verify_s": 3.0 if outcome in ("pass", "rejected") else 0.0, "verify_wait_s": 0.5, "attempts": 3 if outcome == "llm_error" else 1,
        "prompt_tokens": 5200, "completion_tokens": 9000, "reasoning_tokens": 7000,
        "answer": ("Here is the kernel.\n```cuda\n" + src + "```\n") + (hostile if i == 7 else ""),
        "reasoning": "Think about tiling: 128x64 tiles, 4 warps. " * 20 + ("</script>" if i == 3 else ""),
        "source": "" if outcome in ("no_code", "llm_error") else src,
        "report_json": report("pass" if outcome == "pass" else "rejected", ms, [] if outcome == "pass" else wrong)
                       if outcome in ("pass", "rejected") else "",
        "time_ms": ms, "tflops": 310.0 * 0.294 / ms if ms else 0, "fraction_of_peak": (310.0 * 0.294 / ms) / 989.0 if ms else 0,
    })
rounds = []
for r in (1, 2, 3):
    rc = [c for c in cands if c["round"] == r]
    best = min([0.41] + [c["time_ms"] for c in cands if c["round"] <= r and c["time_ms"] > 0])
    rounds.append({"index": r, "prompt_system": "You are an expert CUDA engineer. Write one complete .cu file.",
                   "prompt_user": "def causal(score, b, h, q_idx, kv_idx): ... round %d <findings>" % r,
                   "start_s": (r - 1) * 200.0, "end_s": r * 200.0, "model_s": 160.0, "compile_s": 60.0, "verify_s": 9.0,
                   "candidates": len(rc), "passed": sum(c["outcome"] == "pass" for c in rc), "best_ms_after": best})
h = {"schema": 1, "spec_name": "causal", "key": "3f2a9c0d11e54b7a8c6d5e4f3a2b1c0d", "arch": "sm_90a",
     "endpoint": "https://api.deepseek.com/v1 deepseek-reasoner", "model": "deepseek-reasoner",
     "prompt_version": "prompt-1", "temperature": 0.6, "samples": 4, "budget_s": 900, "max_rounds": 10, "patience": 3,
     "run": True, "gpu": "NVIDIA H200", "peak_tflops": 989.0, "peak_tbps": 4.8, "floor_ms": 0.061, "template_ms": 0.41,
     "template_report_json": report("pass", 0.41, []), "rounds": rounds, "candidates": cands, "best": 8,
     "best_ms": 0.294, "speedup": 0.41 / 0.294, "stop_reason": "budget", "total_s": 600.0}
json.dump(h, open(sys.argv[1], "w"), indent=2)
PY

# --- --history: the page ----------------------------------------------------------------------
page=$work/page.html
run 0 "$kg" report --history "$work/history.json" --out "$page"
check "report --history prints the path it wrote" test "$out" = "$page"
check "the page exists" test -s "$page"
check "the page has no script element" bash -c "! grep -qi '<script' '$page'"
# no_references PAGE: no element of the page names anything to load (src, href, ... attributes,
# url() or @import in its style).
no_references() {
  python3 - "$1" <<'PY'
import re, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.bad, self.in_style = [], False
    def handle_starttag(self, tag, attrs):
        self.in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data", "poster", "background") or name.startswith("on"):
                self.bad.append("<%s %s=%r>" % (tag, name, value))
            if name == "style" and re.search(r"url\(|@import", value or "", re.I):
                self.bad.append("<%s style=%r>" % (tag, value))
        if tag in ("script", "link", "img", "iframe", "object", "embed", "image", "use", "base"):
            self.bad.append("<%s>" % tag)
    def handle_endtag(self, tag):
        self.in_style = False
    def handle_data(self, data):
        if self.in_style and re.search(r"url\(|@import", data, re.I):
            self.bad.append("url() or @import in <style>")
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
if p.bad:
    print("  the page refers to: " + ", ".join(p.bad[:5]), file=sys.stderr)
    sys.exit(1)
PY
}
check "the page refers to nothing outside (no src/href, no script, link, img, url())" no_references "$page"
check "the page's only http(s) addresses are in escaped text (the endpoint, the hostile answer)" \
  bash -c "[[ \$(grep -oE 'https?://[^ &<]*' '$page' | sort -u | tr '\n' ' ') == 'http://evil.invalid/x.png https://api.deepseek.com/v1 ' ]]"
check "the hostile answer is shown escaped" grep -qF '&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;' "$page"
check "the page forbids fetching anything (CSP)" grep -qF "default-src 'none'" "$page"
check "the final report is the best candidate's (it passed)" grep -qF 'class="verdict-pass"' "$page"

if browse "$page" page --virtual-time-budget=2000 --dump-dom; then
  check "chromium: sections, best and template lines, 12 markers, no script" check_dom "$work/page.dom" 12
  check "chromium: the hostile answer stayed text" grep -qF '&lt;script&gt;alert(1)' "$work/page.dom"
  check "chromium: the page made no network request" no_page_requests "$work/page.netlog"
else
  check "chromium opens the page" false
fi
# The net log check can fail: a page that loads an image and a stylesheet is caught.
printf '<!DOCTYPE html><img src="http://example.invalid/x.png"><link rel="stylesheet" href="https://example.invalid/a.css">' \
  >"$work/fetching.html"
if browse "$work/fetching.html" control --virtual-time-budget=2000 --dump-dom; then
  control_urls=$(page_requests "$work/control.netlog" | wc -l)
  check "the net log check sees a page's requests" test "$control_urls" -ge 2
else
  check "chromium opens the control page" false
fi
if browse "$page" shot --window-size=1280,2400 --screenshot="$work/page.png"; then
  check "chromium paints the page (PNG over 20 KB)" python3 -c "
import sys
b = open(sys.argv[1], 'rb').read()
sys.exit(0 if b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) > 20000 else 1)" "$work/page.png"
else
  check "chromium takes a screenshot" false
fi

# An empty loop (no candidates, no rounds) still plots: axes and the template line.
python3 - "$work/history.json" "$work/empty.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
h.update(rounds=[], candidates=[], best=-1, best_ms=0.41, speedup=1, stop_reason="budget", total_s=0)
json.dump(h, open(sys.argv[2], "w"))
PY
run 0 "$kg" report --history "$work/empty.json" --out "$work/empty.html"
if browse "$work/empty.html" empty --dump-dom; then
  check "chromium: an empty loop has the plot with the template line and no markers" check_dom "$work/empty.dom" 0
else
  check "chromium opens the empty page" false
fi

# --- the cache path ---------------------------------------------------------------------------
run 0 "$kg" emit --no-daemon --no-verify --spec "$src/specs/causal.yaml" --out-dir "$work/gen"
check "emit makes a template record" test $? = 0
run 0 "$kg" cache ls
key=$(printf '%s\n' "$out" | awk '$2 == "causal" { print $1; exit }')
check "cache ls names the key" test ${#key} = 32
mkdir -p "$work/cwd"
run 0 bash -c "cd '$work/cwd' && '$kg' report '$key'"
default_page=$work/cwd/kernelgen-report-causal-${key:0:8}.html
check "report KEY writes ./kernelgen-report-<name>-<key8>.html and prints it" \
  test "$out" = "kernelgen-report-causal-${key:0:8}.html" -a -s "$default_page"
check "a template kernel's page says no loop ran" grep -qF "No closed loop ran" "$default_page"
if browse "$default_page" template --dump-dom; then
  check "chromium: the template page has its sections" bash -c "
    for id in summary plot rounds candidates prompts final-report no-loop; do
      grep -qF \"id=\\\"\$id\\\"\" '$work/template.dom' || { echo \"  no id \$id\" >&2; exit 1; }
    done"
else
  check "chromium opens the template page" false
fi
run 0 "$kg" report "${key:0:10}" --out "$work/prefix.html"
check "a unique key prefix works" test -s "$work/prefix.html"
run 0 "$kg" --cache-dir "$KERNELGEN_CACHE_DIR" report "$key" --out "$work/flag.html"
check "--cache-dir works too" test -s "$work/flag.html"

run 1 "$kg" report 0123456789abcdef0123456789abcdef --out "$work/none.html"
check "an unknown key fails and says how to list keys" contains "$err" "kernelgen cache ls"
check "an unknown key names the key" contains "$err" "0123456789abcdef0123456789abcdef"
check "an unknown key writes nothing" test ! -e "$work/none.html"
KERNELGEN_CACHE_DIR=$work/no-cache run 1 "$kg" report "$key"
check "no cache at all: the same advice" contains "$err" "kernelgen cache ls"

# The record rewritten in the LMDB file (mdb_dump / mdb_load, as the daemon would have stored a
# loop's result): with the fixture as its history blob, with a history blob that is not a history
# (its digest names the kernel source), and with a history blob that is missing.
set_history() {  # set_history real|source|missing
  local dir=$KERNELGEN_CACHE_DIR
  mdb_dump -s ac "$dir" >"$work/ac.dump" && mdb_dump -s cas "$dir" >"$work/cas.dump" || return 1
  python3 - "$work" "$key" "$1" <<'PY' || return 1
import ctypes, json, sys
work, key, how = sys.argv[1:]
# Older mdb_load builds do not know every header keyword mdb_dump writes.
header = lambda lines: [l for l in lines[:lines.index("HEADER=END") + 1] if not l.startswith("db_pagesize=")]
class H(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]
xxh = ctypes.CDLL("libxxhash.so.0")
xxh.XXH3_128bits.restype = H
xxh.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
lines = open(work + "/ac.dump").read().split("\n")
start = lines.index("HEADER=END") + 1
for i in range(start, len(lines) - 1, 2):
    if not lines[i].startswith(" "):
        break
    if bytes.fromhex(lines[i].strip()).decode() == key:
        rec = json.loads(bytes.fromhex(lines[i + 1].strip()))
        if how == "real":
            blob = open(work + "/history.json", "rb").read()
            h = xxh.XXH3_128bits(blob, len(blob))
            rec["history_digest"] = "%016x%016x" % (h.high64, h.low64)
            cas = header(open(work + "/cas.dump").read().split("\n"))
            cas += [" " + rec["history_digest"].encode().hex(), " " + blob.hex(), "DATA=END", ""]
            open(work + "/cas.dump", "w").write("\n".join(cas))
        else:
            rec["history_digest"] = rec["source_digest"] if how == "source" else "0" * 32
        lines[i + 1] = " " + json.dumps(rec).encode().hex()
open(work + "/ac.dump", "w").write("\n".join(header(lines) + lines[start:]))
PY
  if [[ $1 == real ]]; then
    mdb_load -s cas -f "$work/cas.dump" "$dir" || return 1
  fi
  mdb_load -s ac -f "$work/ac.dump" "$dir"
}
if set_history real; then
  run 0 "$kg" report "$key" --out "$work/loop.html"
  check "report KEY renders the record's loop history" grep -qF "candidate 8 (round 3, sample 0)" "$work/loop.html"
  check "report KEY shows the record's key" grep -qF "$key" "$work/loop.html"
  if browse "$work/loop.html" loop --dump-dom; then
    check "chromium: the cached loop's page has its sections, lines and 12 markers" check_dom "$work/loop.dom" 12
  else
    check "chromium opens the cached loop's page" false
  fi
else
  check "the record can be rewritten (mdb_dump/mdb_load)" false
fi
if set_history source; then
  run 1 "$kg" report "$key" --out "$work/damaged.html"
  check "a history blob that is not a history is reported as damaged" contains "$err" "loop history of $key is damaged"
  check "a damaged history writes nothing" test ! -e "$work/damaged.html"
else
  check "the record can be rewritten (mdb_dump/mdb_load)" false
fi
if set_history missing; then
  run 1 "$kg" report "$key" --out "$work/damaged.html"
  check "a missing history blob is reported as damaged" contains "$err" "loop history of $key is damaged"
else
  check "the record can be rewritten (mdb_dump/mdb_load)" false
fi

# A hostile spec name or key cannot steer the default file name out of the directory.
python3 - "$work/history.json" "$work/hostile-name.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
h.update(spec_name="../../evil name<>", key="../zz")
json.dump(h, open(sys.argv[2], "w"))
PY
run 0 bash -c "cd '$work/cwd' && '$kg' report --history '$work/hostile-name.json'"
check "the default name keeps only file-name characters" test "$out" = "kernelgen-report-evilname-zz.html" \
  -a -s "$work/cwd/kernelgen-report-evilname-zz.html"

# --- other errors -----------------------------------------------------------------------------
run 1 "$kg" report --history "$work/history.json" --out "$work/no/such/dir/page.html"
check "an unwritable page names the file" contains "$err" "$work/no/such/dir/page.html"
check "an unwritable page gives the OS error" contains "$err" "No such file or directory"
run 1 "$kg" report --history "$work/missing.json"
check "a missing history file is an error naming it" contains "$err" "$work/missing.json"
printf '{"schema": 1, "candidates": [{"outcome": "magic"}]}' >"$work/bad.json"
run 1 "$kg" report --history "$work/bad.json" --out "$work/bad.html"
check "a bad history file says it is not a loop history" contains "$err" "not a loop history"
run 2 "$kg" report
check "neither a key nor --history is a usage error" test $? = 0
run 2 "$kg" report "$key" --history "$work/history.json"
check "both a key and --history is a usage error" test $? = 0

echo "report_chromium: $passed passed, $failed failed"
[[ $failed == 0 ]]

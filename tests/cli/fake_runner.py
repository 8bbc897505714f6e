#!/usr/bin/env python3
# A stand-in for kg_verify_runner (the verifier's judge) on machines without a GPU, for the tests of
# `kernelgen cache verify`: it speaks the runner protocol (core/verify/runner_protocol.h) and claims
# a device, so the command's GPU path (verify, write back, remove) runs on a CPU. Nothing is
# executed: the verdict is read from the file `verdicts` beside this script, one line per spec
# name: "<name> reject" gives a wrong_output finding, "<name> nodevice" exits 77 as a runner
# without a device does; any other spec passes. `--probe` exits 77 when the file `no-device` is
# beside it; an empty CUDA_VISIBLE_DEVICES hides the device from both, as CUDA does. The file
# `arch` names the device's architecture (default sm_90). The runner's environment is built from
# scratch, so files steer it rather than variables. Used only by tests, through KERNELGEN_RUNNER.
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
arch_file = os.path.join(here, "arch")  # the device's arch, else sm_90
arch = open(arch_file).read().strip() if os.path.exists(arch_file) else "sm_90"
device = {"name": "Fake GPU", "arch": arch, "sms": 132}

# As CUDA does: an empty CUDA_VISIBLE_DEVICES hides every device (the verifier passes it on).
hidden = os.environ.get("CUDA_VISIBLE_DEVICES") == ""
if sys.argv[1:] == ["--probe"]:
    if hidden or os.path.exists(os.path.join(here, "no-device")):
        sys.exit(77)
    print(json.dumps({"device": device}))
    sys.exit(0)

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
request = json.load(sys.stdin if args["--request"] == "-" else open(args["--request"]))
verdicts = {}
try:
    for line in open(os.path.join(here, "verdicts")):
        parts = line.split()
        if len(parts) == 2:
            verdicts[parts[0]] = parts[1]
except FileNotFoundError:
    pass
verdict = verdicts.get(request["spec_name"], "pass")
if verdict == "nodevice" or hidden:
    sys.exit(77)
findings = []
if verdict == "reject":
    findings.append({"kind": "wrong_output", "stage": "correctness", "message": "fake runner: out differs at (0, 0, 0, 0)",
                     "trial": "ragged", "shape": "b1 h1 sq77 skv77", "warning": False})
result = {"protocol": request["protocol"], "nonce": request["nonce"], "device": device,
          "trials": [], "findings": findings, "timing": {}, "host": {},
          "startup_seconds": 0.0, "correctness_seconds": 0.0, "timing_seconds": 0.0}
if args["--result"] == "-":
    sys.stdout.write(json.dumps(result))
else:
    with open(args["--result"] + ".tmp", "w") as f:
        json.dump(result, f)
    os.rename(args["--result"] + ".tmp", args["--result"])
sys.exit(0)

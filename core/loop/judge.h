// The loop's Judge over the real verifier (verify/verify.h): nvcc and the sandboxed GPU runner.
#pragma once

#include "loop/loop.h"
#include "verify/verify.h"

namespace kg::loop {

// A JudgeFactory whose judges verify with `setup`'s nvcc, runner and work directory, for the
// request's spec (Context::spec_yaml, spec_file) and arch. Errors: the request carries no spec
// text (the runner needs it).
JudgeFactory verifier_judges(verify::VerifierSetup setup);

}  // namespace kg::loop

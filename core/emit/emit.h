// Resolving a spec to kernel sources and writing them into a build (docs/design.md §1, §7).
//
//   spec ─► key ─► storage ─ hit ─► <name>.cu, <name>.h
//                          └ miss ─► generator ─► verify ─► store ─► write
//
// The client (wrapper/) calls it with `generate = false` for the hit path and after the daemon
// answered; kernelgend calls it with an empty out_dir to fill the cache (docs/protocol.md).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "spec/ast.h"
#include "storage/storage.h"
#include "util/expected.h"

namespace kg::emit {

// A generated kernel: what a cache record points to.
struct KernelSources {
  std::string source;  // <name>.cu
  std::string header;  // <name>.h
};

// The outcome of verifying a newly generated kernel (emit stores it with the record).
using Verification = generate::Verification;

// Verifies `source` for `spec` before it is stored. Failure: the verifier could not work (the
// emit fails; nothing is stored).
using VerifyFn = std::function<Expected<Verification, Failure>(const spec::Spec& spec, const std::string& source)>;

struct EmitRequest {
  const spec::Spec* spec = nullptr;
  std::string arch;     // resolved, e.g. "sm_90a"
  std::string out_dir;  // created if missing; "": write nothing (kernelgend only fills the cache)
  bool reference = false;  // also write <name>_reference.cu (fp32 reference kernel)
  bool touch = false;      // bump mtimes of unchanged outputs (for make, which lacks restat)
  // false: serve hits only; a miss fails with Failure::Kind::NotFound and nothing is generated or
  // stored (the client's hit path: the cache may be open read-only).
  bool generate = true;
  // Called on a generated kernel before it is stored (misses only: hits never verify, so the hit
  // path stays fast), unless the generator verified it itself. Unset: the kernel is stored as
  // Unverified. A Failed verification is an error: nothing is stored or written.
  VerifyFn verify;
  // Passed to the generator on a miss (budget, cancellation, the GPU lock, progress).
  generate::Context context;
  // true: generate even when the key is cached, and replace the record with what was made
  // (`kernelgen generate`: the loop runs although the template kernel is cached).
  bool replace = false;
};

struct EmitResult {
  std::string key;
  bool cache_hit = false;
  int64_t last_access_unix = 0;  // the record's, as found (hits)
  std::string generator;  // the record's generator ("tmpl-16", "llm:deepseek-reasoner:prompt-1")
  cache::Verification verification = cache::Verification::Unverified;  // the record's
  std::vector<std::string> written;  // paths whose content changed
  std::vector<std::string> outputs;  // every output path
};

// Serves `req` from `storage`, asking `generator` on a miss (req.generate) and storing what it
// made. Outputs are written atomically and only when their content changed (so build tools with
// restat skip recompiling). Fails with a message naming the spec and what went wrong; a miss with
// !req.generate fails with Failure::Kind::NotFound.
Expected<EmitResult, Failure> emit_kernel(storage::Storage& storage, generate::Generator& generator,
                                          const EmitRequest& req);


}  // namespace kg::emit

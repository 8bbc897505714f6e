// Resolving a spec to kernel sources and writing them into a build (DESIGN §1, §7).
//
//   spec ─► key ─► local cache ─ hit ─► <name>.cu, <name>.h
//                              └ miss ─► generate (template) ─► store ─► write
//
// The wrapper calls this in-process; the daemon will own the miss path later.
#pragma once

#include <string>
#include <vector>

#include "cache/local_cache.h"
#include "spec/ast.h"
#include "util/expected.h"

namespace kg::emit {

// A generated kernel: what a cache record points to.
struct KernelSources {
  std::string source;  // <name>.cu
  std::string header;  // <name>.h
};

// Generates the template kernel for `spec` (no cache involved). `key` goes into the provenance line.
KernelSources generate_template(const spec::Spec& spec, const std::string& key, const std::string& arch);

struct EmitRequest {
  const spec::Spec* spec = nullptr;
  std::string arch;     // resolved, e.g. "sm_90a"
  std::string out_dir;  // created if missing
  bool reference = false;  // also write <name>_reference.cu (fp32 reference kernel)
  bool touch = false;      // bump mtimes of unchanged outputs (for make, which lacks restat)
};

struct EmitResult {
  std::string key;
  bool cache_hit = false;
  std::string verification;          // the record's: "unverified", "verified", …
  std::vector<std::string> written;  // paths whose content changed
  std::vector<std::string> outputs;  // every output path
};

// Serves `req` from `cache`, generating and storing on a miss. Outputs are written atomically and
// only when their content changed (so build tools with restat skip recompiling). Fails with a
// message naming the spec and what went wrong.
Expected<EmitResult, Failure> emit_kernel(cache::LocalCache& cache, const EmitRequest& req);

}  // namespace kg::emit

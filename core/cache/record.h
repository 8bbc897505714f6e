// The action-cache record (docs/design.md §7): what a key resolved to. Every storage tier keeps the same
// record; the local LMDB cache stores it as JSON in `ac` with a "format" field
// (= kCacheFormatVersion) beside these (record_json in local_cache.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/verification.h"

namespace kg::cache {

struct AcRecord {
  std::string key;               // 32 hex
  std::string name;              // spec name
  std::string arch;              // e.g. sm_90a
  std::string generator;         // Generator::version() of what made it: "tmpl-3", later "llm:<model>"
  std::string source_digest;     // <name>.cu
  std::string header_digest;     // <name>.h
  std::string report_digest;     // verifier report JSON; empty when unverified
  std::string canonical_digest;  // canonical spec text (also stored in cas)
  std::string history_digest;    // the closed loop's history (loop/history.h); empty for template kernels
  Verification verification = Verification::Unverified;  // JSON: verification_name()
  int64_t created_unix = 0;      // informational; never emitted into build outputs
  int64_t last_access_unix = 0;  // updated by touch(), at most once per kTouchIntervalSeconds

  bool operator==(const AcRecord&) const = default;
};

// The blob digests `r` names, the empty ones left out: source, header, report, canonical, history.
// Every tier that copies, checks or collects a record's blobs walks this one list.
inline std::vector<const std::string*> blob_digests(const AcRecord& r) {
  std::vector<const std::string*> out;
  for (const std::string* d : {&r.source_digest, &r.header_digest, &r.report_digest, &r.canonical_digest,
                               &r.history_digest}) {
    if (!d->empty()) {
      out.push_back(d);
    }
  }
  return out;
}

}  // namespace kg::cache

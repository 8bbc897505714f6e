// A cached kernel read back so that a GPU can verify it after the fact (`kernelgen cache verify`):
// a record made where no GPU was (Verification::Unverified) names everything the verifier needs —
// the kernel source and the canonical spec — and nothing of it is trusted. The cache may be
// hostile: every blob is checked against its digest, the spec is rebuilt from its canonical text
// and must give the record's key again, and only then may the verifier's verdict be written back
// under that key.
#pragma once

#include <string>

#include "cache/record.h"
#include "spec/ast.h"
#include "storage/storage.h"
#include "util/expected.h"

namespace kg::verify {

// Everything a record names, checked (load_stored_kernel).
struct StoredKernel {
  cache::AcRecord record;
  spec::Spec spec;        // rebuilt from the canonical text
  std::string spec_yaml;  // the spec file it was rebuilt from: what the verifier's runner parses
  std::string source;     // <name>.cu
  std::string header;     // <name>.h
  std::string canonical;  // the canonical spec text
  std::string history;    // the closed loop's history; "" when the record names none
};

// Reads the blobs `record` names from `storage` and checks them:
//   - each (source, header, canonical spec, report, history: cache::blob_digests) is stored and
//     hashes to its digest;
//   - the canonical spec reads back (spec/canonical_reader.h) as a spec named record.name;
//   - that spec for record.arch has the key record.key (spec::spec_key, with this KernelGen's
//     generator, prompt and verifier versions, as every lookup computes it).
// The header is checked against its digest only: it documents the mods as the spec file wrote
// them (bindings, an absent mod), which the canonical text does not keep, and nothing in it runs.
// Errors (Error kind), each starting with "<key> (<name>): ":
//   "the <blob> blob <digest> is missing or damaged: ..."   (a storage miss, a digest mismatch)
//   "its canonical spec ...: ..."                           (canonical_reader's error)
//   "key mismatch: ..."        the canonical spec gives another key (the spec text was altered,
//                              or an older KernelGen made the record: the message says which)
//   and storage errors other than a miss, with their message.
Expected<StoredKernel, Failure> load_stored_kernel(storage::Storage& storage, const cache::AcRecord& record);

// Writes `kernel.record` back as Verification::Verified with `report_json` (the verifier's report
// of a pass) as its report: the report blob and every blob the record names are put through
// `storage` first (idempotent locally; a remote tier behind storage::TieredStorage receives what
// it lacks), then the record, in one put_record. Returns the record as stored.
// Errors: the storage's (a put that fails), or a blob that stores under another digest than the
// record names (a kernelgen bug; nothing is written then).
Expected<cache::AcRecord, Failure> store_verified(storage::Storage& storage, const StoredKernel& kernel,
                                                  const std::string& report_json);

// Whether a GPU of `device_arch` ("sm_90", as the runner reports it) can run a kernel the verifier
// compiled for `kernel_arch` ("sm_90a"; machine code only, no PTX): exactly that compute
// capability for an arch-specific target ("a"), else (no suffix, or family-specific "f") the same
// major version and a minor version at least the kernel's. For an architecture set
// ("sm_80,sm_90a"): whether one of its architectures runs there. True when `device_arch` is "" or either cannot be read (unknown: let the
// verifier find out).
bool device_can_run(const std::string& device_arch, const std::string& kernel_arch);

}  // namespace kg::verify

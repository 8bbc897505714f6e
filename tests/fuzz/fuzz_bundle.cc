// Fuzz target: reading a prebuilt bundle (core/storage/bundle.h, open_bundle_bytes: the checks of
// open_bundle on bytes in memory).
//
// Each input is a bundle file's bytes. open_bundle_bytes must return, never crash or throw; a
// refusal names the bundle ("bundle fuzz.kgb: ..."). What it accepts must hold together: a
// bundle is read-only, a name it lacks is a miss, and every record's blobs are there and hash to
// their digests. A crash, an uncaught exception, a broken property or a sanitizer report is a
// finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "storage/bundle.h"
#include "util/hash.h"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_bundle: %s\n", what.c_str());
  std::abort();
}

// Every digest at most 4 records of the input name (looked up by scanning for "ac <key>" lines).
void check_records(kg::storage::Storage& bundle, const std::string& bytes) {
  size_t at = 0;
  for (int n = 0; n < 4; ++n) {
    at = bytes.find("\nac ", at);
    if (at == std::string::npos || at + 4 + 32 > bytes.size()) {
      return;
    }
    const std::string key = bytes.substr(at + 4, 32);
    at += 4;
    auto record = bundle.get_record(key);
    if (!record) {
      continue;  // the "ac " was inside a blob
    }
    if (record->key != key) {
      finding("get_record(" + key + ") returned a record for " + record->key);
    }
    for (const std::string* d : {&record->source_digest, &record->header_digest, &record->report_digest,
                                 &record->canonical_digest, &record->history_digest}) {
      if (d->empty()) {
        continue;
      }
      auto blob = bundle.get_blob(*d);
      if (!blob) {
        finding("an accepted bundle lacks blob " + *d + " named by record " + key);
      }
      if (kg::xxh3_128_hex(*blob) != *d) {
        finding("blob " + *d + " does not hash to its digest");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto bundle = kg::storage::open_bundle_bytes(bytes, "fuzz.kgb");
  if (!bundle) {
    if (bundle.error().message.rfind("bundle fuzz.kgb: ", 0) != 0) {
      finding("a refusal that does not name the bundle: " + bundle.error().message);
    }
    return 0;
  }
  kg::storage::Storage& b = **bundle;
  if (!b.read_only() || b.put_blob("x") || b.touch("0").value_or(true)) {
    finding("an opened bundle takes writes");
  }
  const std::string absent = kg::xxh3_128_hex(bytes + "absent");
  if (auto r = b.get_record(absent); r || r.error().kind != kg::Failure::Kind::NotFound) {
    finding("a name the bundle lacks is not a miss");
  }
  check_records(b, bytes);
  return 0;
}

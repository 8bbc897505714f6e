#include "verify/stored_kernel.h"

#include <utility>

#include "spec/canonical_reader.h"
#include "spec/key.h"
#include "util/hash.h"
#include "util/text.h"
#include "version.h"

namespace kg::verify {

namespace {

std::string who(const cache::AcRecord& r) { return r.key + " (" + printable(r.name, 80) + ")"; }

// The blob under `digest`, checked; errors name the record and which blob it is.
Expected<std::string, Failure> blob(storage::Storage& storage, const cache::AcRecord& r, const std::string& digest,
                                    const char* what) {
  auto b = storage.get_blob(digest);
  if (!b) {
    if (b.error().kind == Failure::Kind::NotFound) {
      return fail(who(r) + ": the " + what + " blob " + printable(digest, 64) + " is missing or damaged: " +
                  b.error().message);
    }
    return fail(who(r) + ": cannot read the " + what + " blob " + printable(digest, 64) + ": " + b.error().message,
                b.error().kind);
  }
  // Storage backends check digests themselves; a second look costs one hash and trusts no tier.
  if (xxh3_128_hex(*b) != digest) {
    return fail(who(r) + ": the " + what + " blob " + printable(digest, 64) + " is missing or damaged: "
                "its content hashes to " + xxh3_128_hex(*b));
  }
  return std::move(*b);
}

// "sm_90a" -> {90, 'a'}; {-1, 0} when it is not that form.
std::pair<int, char> arch_parts(const std::string& arch) {
  if (arch.size() < 5 || arch.compare(0, 3, "sm_") != 0) {
    return {-1, 0};
  }
  std::string digits = arch.substr(3);
  char suffix = 0;
  if (digits.back() == 'a' || digits.back() == 'f') {
    suffix = digits.back();
    digits.pop_back();
  }
  if (digits.size() < 2 || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return {-1, 0};
  }
  return {std::stoi(digits), suffix};
}

}  // namespace

Expected<StoredKernel, Failure> load_stored_kernel(storage::Storage& storage, const cache::AcRecord& record) {
  StoredKernel k;
  k.record = record;
  if (record.source_digest.empty() || record.header_digest.empty() || record.canonical_digest.empty()) {
    return fail(who(record) + ": the record names no " +
                (record.source_digest.empty() ? "source" : record.header_digest.empty() ? "header" : "canonical spec") +
                " blob");
  }
  auto source = blob(storage, record, record.source_digest, "source");
  if (!source) {
    return unexpected(source.error());
  }
  k.source = std::move(*source);
  auto header = blob(storage, record, record.header_digest, "header");
  if (!header) {
    return unexpected(header.error());
  }
  k.header = std::move(*header);
  auto canonical = blob(storage, record, record.canonical_digest, "canonical spec");
  if (!canonical) {
    return unexpected(canonical.error());
  }
  k.canonical = std::move(*canonical);
  if (!record.report_digest.empty()) {
    auto report = blob(storage, record, record.report_digest, "report");
    if (!report) {
      return unexpected(report.error());
    }
  }
  if (!record.history_digest.empty()) {
    auto history = blob(storage, record, record.history_digest, "history");
    if (!history) {
      return unexpected(history.error());
    }
    k.history = std::move(*history);
  }

  auto spec = spec::read_canonical(k.canonical, record.name + ".canonical");
  if (!spec) {
    return fail(who(record) + ": its canonical spec (blob " + record.canonical_digest + ") cannot be used: " +
                spec.error().message);
  }
  k.spec = std::move(spec->spec);
  k.spec_yaml = std::move(spec->yaml);
  if (k.spec.name != record.name) {
    return fail(who(record) + ": key mismatch: the record names spec '" + printable(record.name, 80) +
                "' but its canonical spec is '" + k.spec.name + "'");
  }
  auto arch = spec::resolve_arch(record.arch);
  if (!arch || *arch != record.arch) {
    return fail(who(record) + ": key mismatch: the record's target '" + printable(record.arch, 40) +
                "' is not a resolved architecture (sm_90a, sm_80, ...)");
  }
  const std::string key = spec::spec_key(k.spec, record.arch);
  if (key != record.key) {
    std::string why = "its canonical spec for " + record.arch + " has the key " + key;
    const bool template_record = record.generator.rfind("tmpl-", 0) == 0;
    if (template_record && record.generator != kGeneratorVersion) {
      why += "; the record was made by generator " + printable(record.generator, 40) + " and this KernelGen is " +
             kGeneratorVersion + ", so no lookup of this KernelGen finds it";
    } else {
      why += " with this KernelGen (" + std::string(kGeneratorVersion) + ", " + kPromptVersion + ", " +
             kVerifierVersion + "): the spec text or the key was altered";
    }
    return fail(who(record) + ": key mismatch: " + why);
  }
  return k;
}

Expected<cache::AcRecord, Failure> store_verified(storage::Storage& storage, const StoredKernel& kernel,
                                                  const std::string& report_json) {
  cache::AcRecord r = kernel.record;
  const std::pair<const std::string*, const std::string*> blobs[] = {
      {&kernel.source, &r.source_digest},
      {&kernel.header, &r.header_digest},
      {&kernel.canonical, &r.canonical_digest},
      {&kernel.history, &r.history_digest},
  };
  for (const auto& [content, digest] : blobs) {
    if (digest->empty()) {
      continue;
    }
    auto put = storage.put_blob(*content);
    if (!put) {
      return unexpected(put.error());
    }
    if (*put != *digest) {
      return fail(who(r) + ": a blob stored as " + *put + " where the record names " + *digest);
    }
  }
  auto report = storage.put_blob(report_json);
  if (!report) {
    return unexpected(report.error());
  }
  r.report_digest = *report;
  r.verification = cache::Verification::Verified;
  KG_TRY(storage.put_record(r));
  return r;
}

bool device_can_run(const std::string& device_arch, const std::string& kernel_arch) {
  const auto [dev, dev_suffix] = arch_parts(device_arch);
  (void)dev_suffix;
  if (device_arch.empty() || dev < 0) {
    return true;
  }
  // A set ("sm_80,sm_90a"): some architecture of it runs there.
  for (const std::string& arch : spec::arch_set(kernel_arch)) {
    const auto [ker, ker_suffix] = arch_parts(arch);
    if (ker < 0) {
      return true;
    }
    if (ker_suffix == 'a' ? dev == ker : dev / 10 == ker / 10 && dev % 10 >= ker % 10) {
      return true;
    }
  }
  return false;
}

}  // namespace kg::verify

#include "emit/emit.h"

#include <sys/stat.h>
#include <utime.h>

#include <ctime>

#include "codegen/codegen.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/log.h"

namespace kg::emit {

namespace {

Expected<std::string, Failure> load_blob(storage::Storage& cache, const std::string& digest,
                                         const char* what, const std::string& key) {
  auto blob = cache.get_blob(digest);
  if (!blob) {
    return fail(std::string("cache entry ") + key + " lacks its " + what + " (" + digest +
                    "): " + blob.error().message,
                blob.error().kind);
  }
  return std::move(*blob);
}

// Looks the key up; NotFound when the record or any blob it needs is missing or corrupt.
Expected<std::pair<cache::AcRecord, KernelSources>, Failure> lookup(storage::Storage& cache,
                                                                    const std::string& key) {
  auto record = cache.get_record(key);
  if (!record) {
    return unexpected(record.error());
  }
  auto source = load_blob(cache, record->source_digest, "source", key);
  if (!source) {
    return unexpected(source.error());
  }
  auto header = load_blob(cache, record->header_digest, "header", key);
  if (!header) {
    return unexpected(header.error());
  }
  return std::make_pair(std::move(*record), KernelSources{std::move(*source), std::move(*header)});
}

Expected<cache::AcRecord, Failure> store(storage::Storage& cache, const spec::Spec& spec,
                                         const std::string& key, const std::string& arch,
                                         const generate::Kernel& sources, const Verification& verification) {
  cache::AcRecord record;
  record.key = key;
  record.name = spec.name;
  record.arch = arch;
  record.generator = sources.generator;
  auto src = cache.put_blob(sources.source);
  if (!src) {
    return unexpected(src.error());
  }
  auto hdr = cache.put_blob(sources.header);
  if (!hdr) {
    return unexpected(hdr.error());
  }
  auto canon = cache.put_blob(spec::canonical_form(spec));
  if (!canon) {
    return unexpected(canon.error());
  }
  record.source_digest = *src;
  record.header_digest = *hdr;
  record.canonical_digest = *canon;
  record.verification = verification.status;
  if (!verification.report_json.empty() && verification.status == cache::Verification::Verified) {
    auto report = cache.put_blob(verification.report_json);
    if (!report) {
      return unexpected(report.error());
    }
    record.report_digest = *report;
  }
  if (!sources.history_json.empty()) {
    auto history = cache.put_blob(sources.history_json);
    if (!history) {
      return unexpected(history.error());
    }
    record.history_digest = *history;
  }
  record.created_unix = static_cast<int64_t>(std::time(nullptr));
  record.last_access_unix = record.created_unix;
  KG_TRY(cache.put_record(record));
  return record;
}

Expected<void, Failure> write_output(const std::string& path, const std::string& content, bool touch,
                                     EmitResult& result) {
  auto wrote = write_file_if_changed(path, content);
  if (!wrote) {
    return unexpected(wrote.error());
  }
  if (*wrote) {
    result.written.push_back(path);
  } else if (touch && ::utime(path.c_str(), nullptr) != 0) {
    return fail("cannot update the time stamp of " + path);
  }
  result.outputs.push_back(path);
  return {};
}

}  // namespace

Expected<EmitResult, Failure> emit_kernel(storage::Storage& cache, generate::Generator& generator,
                                          const EmitRequest& req) {
  const spec::Spec& spec = *req.spec;
  EmitResult result;
  result.key = spec::spec_key(spec, req.arch);

  KernelSources sources;
  auto hit = req.replace ? Expected<std::pair<cache::AcRecord, KernelSources>, Failure>(
                               fail("regeneration asked for", Failure::Kind::NotFound))
                         : lookup(cache, result.key);
  if (hit) {
    KG_LOG_DEBUG("cache hit for " << spec.name << " (" << result.key << ")");
    result.cache_hit = true;
    result.verification = hit->first.verification;
    result.generator = hit->first.generator;
    result.last_access_unix = hit->first.last_access_unix;
    sources = std::move(hit->second);
  } else {
    if (hit.error().kind != Failure::Kind::NotFound) {
      return unexpected(hit.error());
    }
    KG_LOG_DEBUG("cache miss for " << spec.name << " (" << result.key << "): " << hit.error().message);
    if (!req.generate) {
      return unexpected(hit.error());
    }
    auto made = generator.generate(generate::Request{&spec, result.key, req.arch, req.context});
    if (!made) {
      return unexpected(made.error());
    }
    Verification verification;
    if (made->verification) {
      verification = std::move(*made->verification);
    } else if (req.verify) {
      auto v = req.verify(spec, made->source);
      if (!v) {
        return fail("cannot verify the generated kernel for " + spec.name + ": " + v.error().message);
      }
      verification = std::move(*v);
    }
    if (verification.status == cache::Verification::Failed) {
      return fail("the generated kernel for " + spec.name + " failed verification (not cached):\n" +
                  verification.summary);
    }
    auto record = store(cache, spec, result.key, req.arch, *made, verification);
    if (!record) {
      return fail("cannot store " + spec.name + " in the cache (" + cache.describe() + "): " + record.error().message);
    }
    sources = KernelSources{std::move(made->source), std::move(made->header)};
    result.verification = record->verification;
    result.generator = record->generator;
  }

  if (req.out_dir.empty()) {
    return result;
  }
  KG_TRY(make_dirs(req.out_dir));
  const std::string base = req.out_dir + "/" + spec.name;
  KG_TRY(write_output(base + ".h", sources.header, req.touch, result));
  KG_TRY(write_output(base + ".cu", sources.source, req.touch, result));
  if (req.reference) {
    codegen::Provenance prov{spec.name, result.key};
    KG_TRY(write_output(base + "_reference.cu", codegen::emit_reference_kernel(spec, prov), req.touch, result));
  }
  return result;
}

}  // namespace kg::emit

// kernelgen emit
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>

#include "cache/local_cache.h"
#include "commands.h"
#include "emit_client.h"
#include "emit/emit.h"
#include "config/config.h"
#include "generate/template_generator.h"
#include "lock/lockfile.h"
#include "lock/mode.h"
#include "loop/judge.h"
#include "loop/loop.h"
#include "loop/setup.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/log.h"
#include "verify/emit_gate.h"

namespace kg::cli {

namespace {

constexpr const char* kMoreDetail = " (rerun with KERNELGEN_LOG=debug for details)";

// What read_only mode generates into: records and blobs in this process's memory, gone when it
// exits, so that nothing reaches the cache.
class ScratchStorage final : public storage::Storage {
 public:
  std::string describe() const override { return "memory (mode read_only: nothing is stored)"; }
  bool read_only() const override { return false; }
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override {
    std::lock_guard<std::mutex> hold(m_mutex);
    auto it = m_records.find(key);
    if (it == m_records.end()) {
      return fail("not generated in this process", Failure::Kind::NotFound);
    }
    return it->second;
  }
  Expected<void, Failure> put_record(const cache::AcRecord& record) override {
    std::lock_guard<std::mutex> hold(m_mutex);
    m_records[record.key] = record;
    return {};
  }
  Expected<std::string, Failure> get_blob(const std::string& digest) override {
    std::lock_guard<std::mutex> hold(m_mutex);
    auto it = m_blobs.find(digest);
    if (it == m_blobs.end()) {
      return fail("no blob " + digest + " in memory", Failure::Kind::NotFound);
    }
    return it->second;
  }
  Expected<std::string, Failure> put_blob(const std::string& content) override {
    std::string digest = xxh3_128_hex(content);
    std::lock_guard<std::mutex> hold(m_mutex);
    m_blobs.emplace(digest, content);
    return digest;
  }
  Expected<bool, Failure> touch(const std::string& key) override {
    std::lock_guard<std::mutex> hold(m_mutex);
    if (m_records.count(key) == 0) {
      return fail("not generated in this process", Failure::Kind::NotFound);
    }
    return false;
  }

 private:
  std::mutex m_mutex;
  std::map<std::string, cache::AcRecord> m_records;
  std::map<std::string, std::string> m_blobs;
};

}  // namespace

int run_emit(const GlobalOptions& global, const EmitOptions& given) {
  EmitOptions opts = given;  // opts.locked is filled in below
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  auto spec = spec::load_spec_file(opts.spec_file);
  if (!spec) {
    for (const spec::Diagnostic& d : spec.error()) {
      std::cerr << d.str() << "\n";
    }
    return kExitFailure;
  }
  if (!opts.expect_name.empty() && spec->name != opts.expect_name) {
    KG_LOG_ERROR(opts.spec_file << ": spec name '" << spec->name << "' differs from '" << opts.expect_name
                                << "', the name the build expects (kernelgen_add_attention reads it at "
                                   "configure time: re-run cmake)");
    return kExitFailure;
  }
  // Refused at the door, before the cache or the daemon is asked: a target no generator can make.
  generate::TemplateGenerator generator;
  if (auto ok = generator.check(*spec, *arch); !ok) {
    KG_LOG_ERROR(opts.spec_file << ": --arch " << *arch << ": " << ok.error().message);
    return kExitFailure;
  }

  // --lockfile: read once, before anything is generated, so that a damaged lockfile fails at once.
  if (!opts.lockfile.empty()) {
    auto lock = lock::read_lockfile(opts.lockfile);
    if (!lock) {
      KG_LOG_ERROR(lock.error().message
                   << (lock.error().kind == Failure::Kind::NotFound
                           ? " (create it with `kernelgen lock --lockfile " + opts.lockfile + " SPEC...` after a build)"
                           : ""));
      return kExitFailure;
    }
    opts.locked = std::make_shared<const lock::Lockfile>(std::move(*lock));
  }

  const lock::Mode mode = global.mode;
  if (mode == lock::Mode::Online && !in_process_generation(global, opts)) {
    return emit_with_daemon(global, opts, *spec, *arch);
  }
  if (mode == lock::Mode::Offline || mode == lock::Mode::ReadOnly) {
    if (int served = emit_cached(global, opts, *spec, *arch); served != kNotCached) {
      return served;
    }
    if (mode == lock::Mode::Offline) {
      KG_LOG_ERROR(opts.spec_file << ": " << spec->name << " (key " << spec::spec_key(*spec, *arch)
                                  << ") is not in the cache and the mode is offline: produce it with `kernelgen emit "
                                     "--spec "
                                  << opts.spec_file
                                  << "` (online, on a machine with a GPU), or import a bundle with `kernelgen cache "
                                     "import FILE`");
      return kExitFailure;
    }
  }
  // In this process: --no-daemon (online), a read_only miss, recache. The cache is written here,
  // not by kernelgend; read_only generates into memory and stores nothing.
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)
  std::optional<cache::LocalCache> cache;
  std::optional<storage::LocalStorage> local;
  ScratchStorage scratch;
  storage::Storage* storage = &scratch;
  if (lock::may_store(mode)) {
    auto opened = cache::LocalCache::open(dir);
    if (!opened) {
      KG_LOG_ERROR("cannot open the kernel cache: " << opened.error().message << kMoreDetail);
      return kExitFailure;
    }
    cache.emplace(std::move(*opened));
    storage = &local.emplace(*cache);
  }

  emit::EmitRequest req;
  req.spec = &*spec;
  req.arch = *arch;
  req.out_dir = "";  // first resolved (a hit, or generated and stored), then written below
  req.reference = opts.reference;
  req.touch = opts.touch;
  req.replace = mode == lock::Mode::Recache;
  if (!opts.no_verify) {
    auto yaml = read_file(opts.spec_file);
    if (!yaml) {
      KG_LOG_ERROR(yaml.error().message);
      return kExitFailure;
    }
    req.verify = verify::emit_verifier(verify::verifier_setup(*global.config), *yaml, opts.spec_file, *arch);
  }
  // The closed loop on a miss, as kernelgend runs it, when an endpoint is configured.
  std::shared_ptr<generate::Generator> loop;
  const double budget = opts.budget.empty() ? -1 : config::parse_duration(opts.budget).value_or(-1);
  if (!opts.no_verify && budget != 0) {
    if (auto endpoint = loop::endpoint_from_config(*global.config)) {
      loop = std::make_shared<loop::LoopGenerator>(*endpoint, loop::verifier_judges(verify::verifier_setup(*global.config)),
                                                   std::make_shared<generate::TemplateGenerator>(),
                                                   loop::loop_options(*global.config));
      auto yaml = read_file(opts.spec_file);
      req.context.spec_yaml = yaml ? *yaml : "";
      req.context.spec_file = opts.spec_file;
      req.context.budget_s = budget;
      req.context.progress = [name = spec->name](const std::string&, const std::string& message) {
        std::fprintf(stderr, "kernelgen: %s: %s\n", name.c_str(), message.c_str());
      };
    } else if (endpoint.error().kind != Failure::Kind::NotFound) {
      KG_LOG_ERROR(endpoint.error().message);
      return kExitFailure;
    } else if (budget > 0) {
      KG_LOG_INFO(spec->name << ": the template kernel stands: " << endpoint.error().message);
    }
  }
  // The configured bundles and remote behind the local cache (none of them without a cache to
  // store into: read_only generates into memory).
  std::unique_ptr<storage::TieredStorage> tiers;
  if (local) {
    auto setup = storage::tier_setup(*global.config);
    if (!setup) {
      KG_LOG_ERROR(setup.error().message);
      return kExitFailure;
    }
    auto opened = storage::open_tiers(*setup, &*local, !lock::may_use_network(mode), {});
    if (!opened) {
      KG_LOG_ERROR(opts.spec_file << ": " << opened.error().message);
      return kExitFailure;
    }
    tiers = std::move(*opened);
    storage = tiers.get();
  }
  auto result = emit::emit_kernel(*storage, loop ? *loop : static_cast<generate::Generator&>(generator), req);
  // The lookup's counts per tier (the read-back below is the same lookup: not counted again).
  std::vector<storage::TierStats> counted = tiers ? tiers->take_stats() : std::vector<storage::TierStats>{};
  if (!result) {
    storage::save_stats(dir, counted);
    KG_LOG_ERROR(opts.spec_file << ": " << result.error().message << kMoreDetail);
    return kExitFailure;
  }
  // The outputs, from what was just resolved, through the lockfile's check.
  emit::EmitRequest out = req;
  out.out_dir = opts.out_dir;
  out.generate = false;
  out.replace = false;
  auto checked = locked_storage(*storage, opts, *spec, *arch);
  auto written = emit::emit_kernel(checked, generator, out);
  if (tiers) {
    const std::vector<storage::TierStats> again = tiers->take_stats();
    for (size_t i = 0; i < again.size() && i < counted.size(); ++i) {
      counted[i].bytes_read += again[i].bytes_read;
      counted[i].errors += again[i].errors;
      counted[i].seconds += again[i].seconds;
    }
    storage::save_stats(dir, counted);
  }
  if (!written) {
    KG_LOG_ERROR(opts.spec_file << ": " << written.error().message << kMoreDetail);
    return kExitFailure;
  }
  const char* how = result->cache_hit                ? "cache hit"
                    : mode == lock::Mode::ReadOnly ? "generated (mode read_only: not stored)"
                    : mode == lock::Mode::Recache  ? "generated again (mode recache), replacing the cached kernel"
                                                   : "generated";
  KG_LOG_INFO(spec->name << ": " << how << ", key " << result->key << ", "
                         << cache::verification_name(result->verification) << ", " << written->written.size() << " of "
                         << written->outputs.size() << " files written");
  return kExitOk;
}

}  // namespace kg::cli

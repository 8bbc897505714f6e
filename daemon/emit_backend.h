// The daemon's JobBackend (jobs.h): the template generation path of core/emit on the local cache,
// which this daemon is the only writer of.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/local_cache.h"
#include "generate/generator.h"
#include "jobs.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "verify/verify.h"

namespace kg::daemon {

class EmitBackend : public JobBackend {
 public:
  // `cache_dir` is opened (created) on first use, and again on every request while it cannot be
  // opened, so a daemon started before the directory was fixed recovers without a restart.
  // `generator` makes kernels on a miss (default: the template generator); `verifier` says where
  // the verifier's tools are (verify::verifier_setup of the daemon's configuration).
  //
  // `loop` (the closed loop; null when no LLM endpoint is configured) makes kernels on a miss
  // instead, unless the request's budget is 0; `no_loop` says why there is none, for the job's
  // progress when a request asked for a budget.
  EmitBackend(std::string cache_dir, cache::LocalCache::Options options, verify::VerifierSetup verifier,
                std::shared_ptr<generate::Generator> generator = nullptr,
                std::shared_ptr<generate::Generator> loop = nullptr, std::string no_loop = "",
                storage::TierSetup tiers = {});

  // The generator's check of the request's spec and arch.
  Expected<void, Failure> check(const JobRequest& request) override;
  Expected<Done, Failure> lookup(const JobRequest& request) override;
  // Verification is verify::emit_verifier run under gpus.device(0).
  Expected<Done, Failure> generate(const JobRequest& request, DeviceLocks& gpus) override;

  // True when the cache was opened and its data file has since been removed or replaced (an
  // `rm -rf` of the cache directory): this process's LMDB environment then writes into a deleted
  // file, and the daemon must give way to a new one.
  bool cache_gone();

  // The max_size setting: after storing a kernel, a cache larger than this is cleaned up.
  void set_max_size(uint64_t bytes) { m_max_size = bytes; }

 private:
  // cache_gone() with m_mutex held.
  bool cache_gone_locked() const;
  // The open cache, or why it cannot be opened ("cannot open the kernel cache: …").
  Expected<cache::LocalCache*, Failure> cache();
  // The open cache behind the configured bundles and remote (storage/tiers.h).
  Expected<storage::Storage*, Failure> storage();
  // Adds what this daemon wrote into each tier since the last call (bytes written, errors, time;
  // not its lookups, which the asking build step counted) into the cache's statistics
  // (cache/tier_stats.h). Called after every job.
  void save_counts();

  const std::string m_cache_dir;
  const cache::LocalCache::Options m_options;
  const verify::VerifierSetup m_verifier;
  const std::shared_ptr<generate::Generator> m_generator;
  const std::shared_ptr<generate::Generator> m_loop;
  const std::string m_no_loop;
  std::mutex m_mutex;
  std::optional<cache::LocalCache> m_cache;
  const storage::TierSetup m_tier_setup;
  uint64_t m_max_size = 0;  // set_max_size; 0: no eviction
  std::optional<storage::LocalStorage> m_local;
  std::unique_ptr<storage::TieredStorage> m_tiers;
  dev_t m_data_dev = 0;  // identity of <cache_dir>/data.mdb when the cache was opened
  ino_t m_data_ino = 0;
};

}  // namespace kg::daemon

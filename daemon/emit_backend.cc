#include "emit_backend.h"

#include <sys/stat.h>

#include <cstdlib>

#include "cache/gc.h"
#include "emit/emit.h"
#include "generate/template_generator.h"
#include "storage/local_storage.h"
#include "util/log.h"
#include "verify/emit_gate.h"

namespace kg::daemon {

EmitBackend::EmitBackend(std::string cache_dir, cache::LocalCache::Options options,
                             verify::VerifierSetup verifier, std::shared_ptr<generate::Generator> generator,
                             std::shared_ptr<generate::Generator> loop, std::string no_loop,
                             storage::TierSetup tiers)
    : m_cache_dir(std::move(cache_dir)),
      m_options(std::move(options)),
      m_verifier(std::move(verifier)),
      m_generator(generator ? std::move(generator) : std::make_shared<generate::TemplateGenerator>()),
      m_loop(std::move(loop)),
      m_no_loop(std::move(no_loop)),
      m_tier_setup(std::move(tiers)) {}

Expected<storage::Storage*, Failure> EmitBackend::storage() {
  auto c = cache();
  if (!c) {
    return unexpected(c.error());
  }
  std::lock_guard lock(m_mutex);
  if (!m_local) {
    m_local.emplace(**c);
  }
  // Through a TieredStorage even with no bundle or remote configured: it counts what this
  // daemon writes into each tier (save_counts).
  if (!m_tiers) {
    storage::TieredStorage::Options options;
    options.retry_remote_after_s = 60;  // a daemon outlives a remote's outage
    auto t = storage::open_tiers(m_tier_setup, &*m_local, /*offline=*/false, options);
    if (!t) {
      return unexpected(t.error());
    }
    m_tiers = std::move(*t);
    if (m_tier_setup.any()) {
      KG_LOG_INFO("storage: " << m_tiers->describe());
    }
  }
  return m_tiers.get();
}

Expected<cache::LocalCache*, Failure> EmitBackend::cache() {
  std::lock_guard lock(m_mutex);
  if (!m_cache) {
    auto opened = cache::LocalCache::open(m_cache_dir, m_options);
    if (!opened) {
      return fail("cannot open the kernel cache: " + opened.error().message);
    }
    m_cache.emplace(std::move(*opened));
    struct stat st;
    if (::stat((m_cache_dir + "/data.mdb").c_str(), &st) == 0) {
      m_data_dev = st.st_dev;
      m_data_ino = st.st_ino;
    }
    KG_LOG_INFO("opened the kernel cache " << m_cache_dir);
  } else if (cache_gone_locked()) {
    // Writing on would store into a deleted file that no client can read. The server's watchdog
    // notices too, but only every few seconds; a request in between must not be answered from or
    // into the old file. Exiting makes waiting clients restart a daemon (their respawn-once path),
    // which opens the cache that is there now.
    KG_LOG_ERROR("the cache " << m_cache_dir << " was removed or replaced while this daemon ran; exiting so "
                              << "that clients start a daemon on the new one");
    std::_Exit(3);
  }
  // LocalCache methods may be called from several threads; the handle is never replaced once set.
  return &*m_cache;
}

bool EmitBackend::cache_gone() {
  std::lock_guard lock(m_mutex);
  return cache_gone_locked();
}

bool EmitBackend::cache_gone_locked() const {
  if (!m_cache || m_data_ino == 0) {
    return false;
  }
  struct stat st;
  if (::stat((m_cache_dir + "/data.mdb").c_str(), &st) != 0) {
    return true;
  }
  return st.st_dev != m_data_dev || st.st_ino != m_data_ino;
}

void EmitBackend::save_counts() {
  storage::TieredStorage* tiers = nullptr;
  {
    std::lock_guard lock(m_mutex);
    tiers = m_tiers.get();
  }
  if (tiers == nullptr) {
    return;
  }
  std::vector<storage::TierStats> counted = tiers->take_stats();
  for (storage::TierStats& c : counted) {
    // The build step that asked counted this lookup's hit or miss (and what it read) already.
    c.hits = 0;
    c.misses = 0;
    c.bytes_read = 0;
  }
  storage::save_stats(m_cache_dir, counted);
}

Expected<void, Failure> EmitBackend::check(const JobRequest& request) {
  return m_generator->check(*request.spec, request.arch);
}

Expected<JobBackend::Done, Failure> EmitBackend::lookup(const JobRequest& request) {
  auto c = cache();
  if (!c) {
    return unexpected(c.error());
  }
  emit::EmitRequest req;
  req.spec = request.spec.get();
  req.arch = request.arch;
  req.generate = false;
  auto s = storage();
  if (!s) {
    return unexpected(s.error());
  }
  auto r = emit::emit_kernel(**s, *m_generator, req);
  save_counts();
  if (!r) {
    return unexpected(r.error());
  }
  return Done{true, r->verification};
}

Expected<JobBackend::Done, Failure> EmitBackend::generate(const JobRequest& request, DeviceLocks& gpus) {
  auto c = cache();
  if (!c) {
    return unexpected(c.error());
  }
  emit::EmitRequest req;
  req.spec = request.spec.get();
  req.arch = request.arch;
  if (request.verify) {
    // The verifier runs on the default CUDA device: one verification at a time there.
    emit::VerifyFn verify = verify::emit_verifier(m_verifier, request.spec_text, request.file, request.arch);
    req.verify = [verify = std::move(verify), &gpus, key = request.key](const spec::Spec& spec,
                                                                        const std::string& source) {
      std::lock_guard gpu(gpus.device(0));
      KG_LOG_DEBUG("job " << key << ": verifying on device 0");
      return verify(spec, source);
    };
  }
  req.context.spec_yaml = request.spec_text;
  req.context.spec_file = request.file;
  req.context.budget_s = request.budget_s;
  req.context.gpu_lock = &gpus.device(0);
  req.context.progress = request.progress;
  generate::Generator* generator = m_generator.get();
  if (m_loop && request.budget_s != 0 && request.verify) {
    generator = m_loop.get();
  } else if (request.progress && request.budget_s > 0) {
    request.progress("generating", "the template kernel stands: " + (m_loop ? std::string("no GPU verification asked")
                                                                            : m_no_loop));
  }
  auto s = storage();
  if (!s) {
    return unexpected(s.error());
  }
  auto r = emit::emit_kernel(**s, *generator, req);
  save_counts();
  if (!r) {
    return unexpected(r.error());
  }
  if (!r->cache_hit && m_max_size > 0) {
    // Eviction by size, after a kernel was added (the only time the cache grows).
    if (auto st = (*c)->stats(); st && st->cas_bytes > m_max_size) {
      if (auto gc = cache::collect_garbage(**c, m_max_size)) {
        KG_LOG_INFO("the cache outgrew " << m_max_size << " bytes: evicted " << gc->records_removed
                                         << " kernels used longest ago (" << gc->bytes_before << " -> "
                                         << gc->bytes_after << " bytes)");
      } else {
        KG_LOG_WARN("cannot evict from the cache: " << gc.error().message);
      }
    }
  }
  if (r->key != request.key) {
    return fail("internal error: the stored key " + r->key + " differs from the request's " + request.key);
  }
  return Done{r->cache_hit, r->verification};
}

}  // namespace kg::daemon

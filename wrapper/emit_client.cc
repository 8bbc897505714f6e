#include "emit_client.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <variant>

#include "cache/local_cache.h"
#include "cache/tier_stats.h"
#include "config/config.h"
#include "daemon_client.h"
#include "emit/emit.h"
#include "generate/template_generator.h"
#include "lock/locked_storage.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "progress.h"
#include "protocol/request_check.h"
#include "util/file.h"
#include "util/log.h"

namespace kg::cli {

namespace {

// How often the progress display is refreshed while waiting.
constexpr int kTickMs = 250;

// The end of every error message: how to see more.
std::string more_detail(const std::string& daemon_log) {
  std::string s = " (rerun with KERNELGEN_LOG=debug for details";
  if (!daemon_log.empty()) {
    s += "; the daemon's log is " + daemon_log;
  }
  return s + ")";
}

// Adds what the tiers counted into `counted`, merging by tier (cache/tier_stats.h).
void collect(storage::TieredStorage& tiers, std::vector<storage::TierStats>& counted) {
  for (const storage::TierStats& s : tiers.take_stats()) {
    KG_LOG_DEBUG("tier " << s.tier << ": " << s.hits << " hits, " << s.misses << " misses, " << s.errors
                         << " errors, " << s.bytes_read << " bytes read, " << s.bytes_written << " written, "
                         << s.seconds * 1000 << " ms");
    auto it = std::find_if(counted.begin(), counted.end(),
                           [&](const storage::TierStats& c) { return c.tier == s.tier; });
    if (it == counted.end()) {
      counted.push_back(s);
    } else {
      it->add(s);
    }
  }
}

// Adds this process's counts into the cache directory's statistics: once per process, no sync
// (cache/tier_stats.h). A directory that is not there (nothing was ever cached) keeps none.
void save_counts(const std::string& dir, const std::vector<storage::TierStats>& counted) {
  storage::save_stats(dir, counted);
}

// Writes the outputs from the cache, read-only, through the lockfile's check (--lockfile).
// NotFound: the cache lacks the kernel (or there is no cache yet). The local tier's counts go
// into `counted`.
Expected<emit::EmitResult, Failure> from_cache(const std::string& dir, const EmitOptions& opts,
                                               const spec::Spec& spec, const std::string& arch,
                                               std::vector<storage::TierStats>& counted) {
  auto cache = cache::LocalCache::open(dir, /*read_only=*/true);
  if (!cache) {
    if (cache.error().kind == Failure::Kind::NotFound) {
      storage::TierStats miss;  // no cache yet: a miss of the local tier all the same
      miss.tier = "local";
      miss.misses = 1;
      counted.push_back(miss);
      return unexpected(cache.error());
    }
    return fail("cannot open the kernel cache: " + cache.error().message);
  }
  emit::EmitRequest req;
  req.spec = &spec;
  req.arch = arch;
  req.out_dir = opts.out_dir;
  req.reference = opts.reference;
  req.touch = opts.touch;
  req.generate = false;
  storage::LocalStorage local(*cache);
  // A TieredStorage of the local tier alone: it counts (hits, bytes, time) and does nothing else.
  storage::TieredStorage tiers(std::make_unique<storage::BorrowedStorage>(local), {}, nullptr, {});
  auto storage = locked_storage(tiers, opts, spec, arch);
  generate::TemplateGenerator generator;  // not asked: a miss returns NotFound
  auto r = emit::emit_kernel(storage, generator, req);
  collect(tiers, counted);
  return r;
}

// A local miss asked of the prebuilt bundles and the remote (storage/tiers.h), through the
// lockfile's check. A hit there is copied into the local cache (opened for writing for that),
// unless the mode stores nothing; offline asks the bundles only. NotFound: no tier has it.
Expected<emit::EmitResult, Failure> from_tiers(const std::string& dir, lock::Mode mode,
                                               const storage::TierSetup& setup, const EmitOptions& opts,
                                               const spec::Spec& spec, const std::string& arch,
                                               std::vector<storage::TierStats>& counted) {
  const bool store = lock::may_store(mode);
  std::optional<cache::LocalCache> cache;
  std::optional<storage::LocalStorage> local;
  if (store) {
    auto opened = cache::LocalCache::open(dir);
    if (!opened) {
      return fail("cannot open the kernel cache: " + opened.error().message);
    }
    cache.emplace(std::move(*opened));
    local.emplace(*cache);
  }
  storage::TieredStorage::Options options;
  options.copy_hits_local = store;
  options.write_remote = false;  // a lookup writes nothing upstream
  options.local_already_missed = true;  // from_cache just looked
  auto tiers = storage::open_tiers(setup, local ? &*local : nullptr, !lock::may_use_network(mode), options);
  if (!tiers) {
    return unexpected(tiers.error());
  }
  emit::EmitRequest req;
  req.spec = &spec;
  req.arch = arch;
  req.out_dir = opts.out_dir;
  req.reference = opts.reference;
  req.touch = opts.touch;
  req.generate = false;
  auto locked = locked_storage(**tiers, opts, spec, arch);
  generate::TemplateGenerator generator;  // not asked
  auto r = emit::emit_kernel(locked, generator, req);
  collect(**tiers, counted);
  return r;
}

void report(const spec::Spec& spec, const emit::EmitResult& r, const char* how) {
  KG_LOG_INFO(spec.name << ": " << how << ", key " << r.key << ", " << cache::verification_name(r.verification) << ", "
                        << r.written.size() << " of " << r.outputs.size() << " files written");
}

// One generate request on a fresh connection. Lost: the daemon went away before answering.
struct Answer {
  bool lost = false;
  int64_t daemon_pid = 0;
  protocol::Result result;
};

// The daemon's refusal of a connection beyond its limit, as the client says it.
Failure busy_failure(int64_t pid, const protocol::Error& e) {
  const std::string count = e.connections > 0 ? std::to_string(e.connections) + " connections" : e.message;
  return Failure{Failure::Kind::Error, "the kernelgen daemon (pid " + std::to_string(pid) + ") is busy (" + count +
                                           "); try again later, or start it with a higher --max-connections"};
}

Expected<Answer, Failure> ask(const DaemonTarget& target, const protocol::GenerateRequest& request,
                              ProgressDisplay& progress) {
  auto conn = connect_or_start_daemon(target);
  if (!conn) {
    return fail("cannot reach the kernelgen daemon: " + conn.error().message, conn.error().kind);
  }
  Answer answer;
  answer.daemon_pid = conn->hello().pid;
  const std::string who = "kernelgend (pid " + std::to_string(answer.daemon_pid) + ")";
  KG_LOG_DEBUG("asking " << who << " to generate " << request.file);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_frame = start;
  const ClientTimeouts& limits = target.timeouts;
  if (!conn->send(request)) {
    // A daemon at its connection limit greets, says busy and closes: read what it said.
    Incoming in = conn->receive(limits.greeting_ms);
    if (in.kind == Incoming::Kind::Message) {
      if (auto* e = std::get_if<protocol::Error>(&in.response); e && e->code == protocol::ErrorCode::Busy) {
        return unexpected(busy_failure(answer.daemon_pid, *e));
      }
    }
    answer.lost = true;
    return answer;
  }
  for (;;) {
    const auto now = Clock::now();
    const int64_t total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
    const int64_t silent_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_frame).count();
    if (limits.total_ms > 0 && total_ms >= limits.total_ms) {
      return fail(who + " gave no result within " + seconds_text(limits.total_ms) +
                      " (KERNELGEN_DAEMON_TIMEOUT; 0 = no limit); its job may still finish and be cached",
                  Failure::Kind::Timeout);
    }
    if (silent_ms >= limits.silence_ms) {
      return fail(who + " sent nothing for " + seconds_text(limits.silence_ms) +
                      " (not even its progress heartbeat): it is stopped or hung "
                      "(KERNELGEN_DAEMON_SILENCE_TIMEOUT)",
                  Failure::Kind::Timeout);
    }
    int wait_ms = kTickMs;
    wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, limits.silence_ms - silent_ms));
    if (limits.total_ms > 0) {
      wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, limits.total_ms - total_ms));
    }
    Incoming in = conn->receive(std::max(wait_ms, 1));
    switch (in.kind) {
      case Incoming::Kind::Timeout:
        progress.tick();
        continue;
      case Incoming::Kind::Lost:
        KG_LOG_DEBUG("connection to kernelgend lost: " << in.error);
        answer.lost = true;
        return answer;
      case Incoming::Kind::Garbage:
        return fail(who + " sent " + in.error);
      case Incoming::Kind::Message:
        break;
    }
    last_frame = Clock::now();
    if (auto* p = std::get_if<protocol::Progress>(&in.response)) {
      KG_LOG_DEBUG("progress: " << p->stage << ": " << printable(p->message));
      progress.update(*p);
    } else if (auto* r = std::get_if<protocol::Result>(&in.response)) {
      answer.result = std::move(*r);
      return answer;
    } else if (auto* e = std::get_if<protocol::Error>(&in.response)) {
      if (e->code == protocol::ErrorCode::Draining) {
        answer.lost = true;  // it is going away: the next attempt starts a new one
        return answer;
      }
      if (e->code == protocol::ErrorCode::Busy) {
        return unexpected(busy_failure(answer.daemon_pid, *e));
      }
      return fail("kernelgend refused the request: " + std::string(protocol::error_code_name(e->code)) + ": " +
                  printable(e->message));
    } else {
      return fail("kernelgend answered a generate request with an unexpected message");
    }
  }
}

}  // namespace

bool in_process_generation(const GlobalOptions& global, const EmitOptions& opts) {
  return opts.no_daemon || global.config->flag("no_daemon");
}

lock::LockedStorage locked_storage(storage::Storage& inner, const EmitOptions& opts, const spec::Spec& spec,
                                   const std::string& arch) {
  return lock::LockedStorage(inner, opts.locked.get(), opts.lockfile, opts.spec_file, spec.name, arch);
}

namespace {

// emit_cached, counting into `counted` (the caller saves it).
int serve_cached(const GlobalOptions& global, const EmitOptions& opts, const spec::Spec& spec,
                 const std::string& arch, std::vector<storage::TierStats>& counted) {
  auto hit = from_cache(global.cache_dir, opts, spec, arch, counted);
  if (hit) {
    report(spec, *hit, "cache hit");
    // Eviction goes by last access: record this one, at most once per kTouchIntervalSeconds (the
    // read above saw when the last was), so that nearly every hit stays a read.
    if (lock::may_store(global.mode) && std::time(nullptr) - hit->last_access_unix >= cache::kTouchIntervalSeconds) {
      if (auto writable = cache::LocalCache::open(global.cache_dir)) {
        if (auto t = writable->touch(hit->key); !t) {
          KG_LOG_DEBUG("cannot record the access to " << hit->key << ": " << t.error().message);
        }
      }
    }
    return kExitOk;
  }
  if (hit.error().kind != Failure::Kind::NotFound) {
    KG_LOG_ERROR(opts.spec_file << ": " << hit.error().message << more_detail(""));
    return kExitFailure;
  }
  KG_LOG_DEBUG("not in the cache: " << hit.error().message);
  auto setup = storage::tier_setup(*global.config);
  if (!setup) {
    KG_LOG_ERROR(setup.error().message);
    return kExitFailure;
  }
  if (setup->any()) {
    auto shared = from_tiers(global.cache_dir, global.mode, *setup, opts, spec, arch, counted);
    if (shared) {
      report(spec, *shared, "shared cache hit");
      return kExitOk;
    }
    if (shared.error().kind != Failure::Kind::NotFound) {
      KG_LOG_ERROR(opts.spec_file << ": " << shared.error().message << more_detail(""));
      return kExitFailure;
    }
    KG_LOG_DEBUG("not in the shared tiers: " << shared.error().message);
  }
  return kNotCached;
}

// Saves what was counted when it goes: at the end of a build step, whichever way it ends (after
// a miss the daemon has made the cache directory by then).
class SaveCounts {
 public:
  explicit SaveCounts(std::string dir) : m_dir(std::move(dir)) {}
  ~SaveCounts() { save_counts(m_dir, counted); }
  SaveCounts(const SaveCounts&) = delete;
  SaveCounts& operator=(const SaveCounts&) = delete;
  std::vector<storage::TierStats> counted;

 private:
  std::string m_dir;
};

}  // namespace

int emit_cached(const GlobalOptions& global, const EmitOptions& opts, const spec::Spec& spec,
                const std::string& arch) {
  SaveCounts saver(global.cache_dir);
  return serve_cached(global, opts, spec, arch, saver.counted);
}


int emit_with_daemon(const GlobalOptions& global, const EmitOptions& opts, const spec::Spec& spec,
                     const std::string& arch) {
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)

  // The hit path: no socket, no daemon. Lean on purpose — this is what every build step runs.
  SaveCounts saver(dir);
  if (int served = serve_cached(global, opts, spec, arch, saver.counted); served != kNotCached) {
    return served;
  }

  auto target = daemon_target(dir, *global.config);
  if (!target) {
    KG_LOG_ERROR(opts.spec_file << ": cannot reach the kernelgen daemon: " << target.error().message
                                << more_detail(""));
    return kExitFailure;
  }
  auto text = read_file(opts.spec_file);
  if (!text) {
    KG_LOG_ERROR(text.error().message);
    return kExitFailure;
  }
  protocol::GenerateRequest request;
  request.spec = std::move(*text);
  request.file = opts.spec_file;
  request.arch = arch;
  request.verify = !opts.no_verify;
  if (!opts.budget.empty()) {
    request.budget_s = config::parse_duration(opts.budget).value_or(-1);
  }
  if (auto checked = protocol::check_generate(request); !checked) {
    KG_LOG_ERROR(opts.spec_file << ": " << checked.error());
    return kExitFailure;
  }

  ProgressDisplay progress(spec.name);
  Expected<Answer, Failure> answer = fail("not asked");
  // A daemon that dies mid-job is started again once, and the request repeated.
  for (int attempt = 0; attempt < 2; ++attempt) {
    answer = ask(*target, request, progress);
    if (!answer || !answer->lost) {
      break;
    }
    progress.finish();
    if (attempt == 0) {
      KG_LOG_WARN(spec.name << ": the kernelgen daemon (pid " << answer->daemon_pid
                            << ") went away before answering; starting it again (its log: "
                            << target->paths.log << ")");
    }
  }
  progress.finish();
  if (!answer) {
    KG_LOG_ERROR(opts.spec_file << ": " << answer.error().message << more_detail(target->paths.log));
    return kExitFailure;
  }
  if (answer->lost) {
    KG_LOG_ERROR(opts.spec_file << ": the kernelgen daemon went away twice before answering (pid "
                                << answer->daemon_pid << " last)" << more_detail(target->paths.log));
    return kExitFailure;
  }
  protocol::Result result = answer->result;
  result.error = printable_lines(result.error);
  if (!result.ok) {
    // Spec diagnostics are complete lines of their own; other errors get the spec file in front.
    const bool diagnostics = result.key.empty() && result.error.find(": error: ") != std::string::npos;
    if (diagnostics) {
      KG_LOG_ERROR("the daemon rejected the spec:\n" << result.error << more_detail(target->paths.log));
    } else {
      KG_LOG_ERROR(opts.spec_file << ": " << result.error << more_detail(target->paths.log));
    }
    return kExitFailure;
  }

  // Reading back what the daemon stored is part of this miss, not a hit of its own: not counted.
  std::vector<storage::TierStats> not_counted;
  auto written = from_cache(dir, opts, spec, arch, not_counted);
  if (!written && written.error().kind != Failure::Kind::NotFound) {
    // The lockfile refused it, or an output could not be written.
    KG_LOG_ERROR(opts.spec_file << ": " << written.error().message << more_detail(target->paths.log));
    return kExitFailure;
  }
  if (!written) {
    KG_LOG_ERROR(opts.spec_file << ": the daemon stored " << spec.name << " under key " << result.key
                                << ", but reading it back failed: " << written.error().message
                                << more_detail(target->paths.log));
    return kExitFailure;
  }
  if (written->key != result.key) {
    KG_LOG_WARN(spec.name << ": the daemon's key " << result.key << " differs from this client's "
                          << written->key << "; the spec file changed while it was generated?");
  }
  const char* how = result.outcome == protocol::Outcome::Generated ? "generated by the daemon"
                    : result.outcome == protocol::Outcome::Joined
                        ? "generated by the daemon (joined a running job)"
                        : "cache hit (daemon)";
  report(spec, *written, how);
  return kExitOk;
}

}  // namespace kg::cli

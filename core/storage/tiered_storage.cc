#include "storage/tiered_storage.h"

#include <chrono>
#include <optional>

#include "util/log.h"

namespace kg::storage {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

bool may_leave_this_machine(const cache::AcRecord& record) {
  return record.generator.rfind("llm:", 0) != 0 || record.verification == cache::Verification::Verified;
}

struct TieredStorage::Tier {
  enum class Role { Local, Prebuilt, Remote };
  std::unique_ptr<Storage> storage;
  Role role;
  std::string name;
  // A remote that failed is left alone for the rest of the process, or until `retry_at`.
  std::atomic<bool> down_flag{false};
  std::atomic<int64_t> retry_at_ms{0};  // steady-clock ms; 0: never
  double retry_after_s = 0;

  bool down() {
    if (!down_flag.load()) {
      return false;
    }
    const int64_t at = retry_at_ms.load();
    if (at > 0 && now_ms() >= at) {
      down_flag = false;  // try it again; a new failure warns again
      return false;
    }
    return true;
  }
  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  }
  mutable std::mutex mutex;
  TierStats stats;

  Tier(std::unique_ptr<Storage> s, Role r) : storage(std::move(s)), role(r), name(storage->describe()) {
    stats.tier = r == Role::Local ? "local" : name;
  }

  void count(double seconds, bool hit, bool miss, bool error, uint64_t read, uint64_t written) {
    std::lock_guard lock(mutex);
    stats.seconds += seconds;
    stats.hits += hit;
    stats.misses += miss;
    stats.errors += error;
    stats.bytes_read += read;
    stats.bytes_written += written;
  }

  // After an Error or Timeout of a remote: one warning, then the tier is off.
  void failed(const Failure& f) {
    if (role != Role::Remote) {
      return;
    }
    if (retry_after_s > 0) {
      retry_at_ms = now_ms() + static_cast<int64_t>(retry_after_s * 1000);
    }
    if (!down_flag.exchange(true)) {
      KG_LOG_WARN("the remote cache " << name << " failed (" << f.message << "); going on with the local cache only"
                                      << (retry_after_s > 0 ? " for " + std::to_string(static_cast<int>(retry_after_s)) + " s"
                                                            : std::string(" for this process")));
    }
  }
};

TieredStorage::TieredStorage(std::unique_ptr<Storage> local, std::vector<std::unique_ptr<Storage>> prebuilt,
                             std::unique_ptr<Storage> remote, Options options)
    : m_options(options) {
  if (local) {
    m_tiers.push_back(std::make_unique<Tier>(std::move(local), Tier::Role::Local));
  }
  for (auto& p : prebuilt) {
    if (p) {
      m_tiers.push_back(std::make_unique<Tier>(std::move(p), Tier::Role::Prebuilt));
    }
  }
  if (remote) {
    m_tiers.push_back(std::make_unique<Tier>(std::move(remote), Tier::Role::Remote));
    m_tiers.back()->retry_after_s = options.retry_remote_after_s;
  }
}

TieredStorage::~TieredStorage() = default;

std::string TieredStorage::describe() const {
  std::string out;
  for (const auto& t : m_tiers) {
    out += (out.empty() ? "" : ", ") + t->name;
  }
  return out.empty() ? "no storage" : out;
}

bool TieredStorage::read_only() const {
  for (const auto& t : m_tiers) {
    if (t->role == Tier::Role::Local && !t->storage->read_only()) {
      return false;
    }
    if (t->role == Tier::Role::Remote && m_options.write_remote && !t->storage->read_only()) {
      return false;
    }
  }
  return true;
}

Expected<cache::AcRecord, Failure> TieredStorage::get_record(const std::string& key) {
  std::vector<std::string> reasons;
  Tier* local = nullptr;
  for (const auto& t : m_tiers) {
    if (t->role == Tier::Role::Local) {
      local = t.get();
      if (m_options.local_already_missed) {
        continue;
      }
    }
    if (t->down()) {
      reasons.push_back(t->name + ": skipped (it failed earlier in this process)");
      continue;
    }
    const auto t0 = Clock::now();
    auto r = t->storage->get_record(key);
    if (!r) {
      const bool miss = r.error().kind == Failure::Kind::NotFound;
      t->count(since(t0), false, miss, !miss, 0, 0);
      reasons.push_back(t->name + ": " + r.error().message);
      if (!miss) {
        t->failed(r.error());
      }
      continue;
    }
    // The record's blobs must come from the same tier: a record whose blobs are missing there is
    // a miss of that tier (the record alone cannot be served).
    uint64_t bytes = 0;
    bool complete = true;
    bool blob_failed = false;
    std::vector<std::string> blobs;
    if (t->role != Tier::Role::Local) {
      for (const std::string* d : cache::blob_digests(*r)) {
        auto b = t->storage->get_blob(*d);
        if (!b) {
          complete = false;
          reasons.push_back(t->name + ": the record names blob " + *d + " which it cannot give: " + b.error().message);
          if (b.error().kind != Failure::Kind::NotFound) {
            blob_failed = true;
            t->failed(b.error());
          }
          break;
        }
        bytes += b->size();
        blobs.push_back(std::move(*b));
      }
    }
    t->count(since(t0), complete, !complete, blob_failed, bytes, 0);
    if (!complete) {
      continue;
    }
    if (t->role != Tier::Role::Local && local != nullptr && m_options.copy_hits_local &&
        !local->storage->read_only()) {
      // Copy the hit down so that the next lookup is local: record and blobs in one local
      // transaction (one sync; a crash leaves the record with its blobs or nothing). A failure
      // here costs only the copy.
      const auto c0 = Clock::now();
      cache::EntryToStore entry{&*r, {}};
      const std::vector<const std::string*> digests = cache::blob_digests(*r);
      uint64_t written = 0;
      for (size_t i = 0; i < digests.size(); ++i) {
        entry.blobs.push_back(cache::BlobToStore{*digests[i], blobs[i]});
        written += blobs[i].size();
      }
      const auto put = local->storage->put_entries({entry});
      if (!put) {
        written = 0;
        KG_LOG_WARN("cannot copy " << key << " from " << t->name << " into " << local->name << ": "
                                   << put.error().message);
      }
      local->count(since(c0), false, false, !put, 0, written);
    }
    {
      std::lock_guard lock(m_mutex);
      m_last_miss = std::move(reasons);
    }
    return r;
  }
  std::string why;
  for (const std::string& r : reasons) {
    why += (why.empty() ? "" : "; ") + r;
  }
  {
    std::lock_guard lock(m_mutex);
    m_last_miss = reasons;
  }
  return fail("no tier holds " + key + (why.empty() ? "" : " (" + why + ")"), Failure::Kind::NotFound);
}

Expected<std::string, Failure> TieredStorage::get_blob(const std::string& digest) {
  std::string why;
  for (const auto& t : m_tiers) {
    if (t->down()) {
      continue;
    }
    const auto t0 = Clock::now();
    auto b = t->storage->get_blob(digest);
    if (b) {
      t->count(since(t0), false, false, false, b->size(), 0);
      return b;
    }
    const bool miss = b.error().kind == Failure::Kind::NotFound;
    t->count(since(t0), false, false, !miss, 0, 0);
    if (!miss) {
      t->failed(b.error());
    }
    why += (why.empty() ? "" : "; ") + t->name + ": " + b.error().message;
  }
  return fail("no tier holds blob " + digest + (why.empty() ? "" : " (" + why + ")"), Failure::Kind::NotFound);
}

Expected<std::string, Failure> TieredStorage::put_blob(const std::string& content) {
  std::optional<Expected<std::string, Failure>> local_result;
  for (const auto& t : m_tiers) {
    const bool is_local = t->role == Tier::Role::Local;
    const bool is_remote = t->role == Tier::Role::Remote && m_options.write_remote && !t->storage->read_only();
    if ((!is_local && !is_remote) || t->down()) {
      continue;
    }
    const auto t0 = Clock::now();
    auto r = t->storage->put_blob(content);
    t->count(since(t0), false, false, !r, 0, r ? content.size() : 0);
    if (is_local) {
      local_result = r;
      if (!r) {
        return r;  // the local tier is the one that must hold it
      }
    } else if (!r) {
      t->failed(r.error());
    } else if (!local_result) {
      local_result = r;
    }
  }
  if (!local_result) {
    return fail("no tier of " + describe() + " takes writes");
  }
  return *local_result;
}

Expected<void, Failure> TieredStorage::put_record(const cache::AcRecord& record) {
  bool stored = false;
  for (const auto& t : m_tiers) {
    const bool is_local = t->role == Tier::Role::Local;
    const bool is_remote = t->role == Tier::Role::Remote && m_options.write_remote && !t->storage->read_only();
    if ((!is_local && !is_remote) || t->down()) {
      continue;
    }
    if (is_remote && !may_leave_this_machine(record)) {
      KG_LOG_INFO("not uploading " << record.key << " (" << record.generator
                                   << "): a kernel the loop wrote travels only once a GPU verified it");
      continue;
    }
    const auto t0 = Clock::now();
    auto r = t->storage->put_record(record);
    t->count(since(t0), false, false, !r, 0, 0);
    if (!r) {
      if (is_local) {
        return r;
      }
      t->failed(r.error());
      continue;
    }
    stored = true;
  }
  if (!stored) {
    return fail("no tier of " + describe() + " takes writes");
  }
  return {};
}

Expected<bool, Failure> TieredStorage::touch(const std::string& key) {
  for (const auto& t : m_tiers) {
    if (t->role == Tier::Role::Local) {
      return t->storage->touch(key);
    }
  }
  return false;
}

std::vector<TierStats> TieredStorage::stats() const {
  std::vector<TierStats> out;
  for (const auto& t : m_tiers) {
    std::lock_guard lock(t->mutex);
    out.push_back(t->stats);
  }
  return out;
}

std::vector<TierStats> TieredStorage::take_stats() {
  std::vector<TierStats> out;
  for (const auto& t : m_tiers) {
    std::lock_guard lock(t->mutex);
    out.push_back(t->stats);
    TierStats zero;
    zero.tier = t->stats.tier;
    t->stats = zero;
  }
  return out;
}

std::vector<std::string> TieredStorage::last_miss_reasons() const {
  std::lock_guard lock(m_mutex);
  return m_last_miss;
}

}  // namespace kg::storage

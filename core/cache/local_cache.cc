#include "cache/local_cache.h"

#include <lmdb.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string_view>
#include <tuple>
#include <utility>

#include "util/file.h"
#include "util/hash.h"
#include "util/log.h"
#include "version.h"

namespace kg::cache {

namespace {

// A transaction body returns 0, an LMDB/errno code, or this after storing a Failure of its own.
constexpr int kBodyFailed = INT_MIN;

// Resizes and reader-table cleanups are retried; a loop that never settles is a bug, not a wait.
constexpr int kMaxAttempts = 64;

MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

std::string format_string() { return std::to_string(kCacheFormatVersion); }

// One open LMDB environment. Shared by every LocalCache on the same directory in this process,
// because LMDB must not open one environment twice in a process (closing the second copy would
// drop the first one's POSIX locks).
class Env {
 public:
  Env(MDB_env* env, std::string dir, bool read_only, uint64_t max_map_size)
      : m_env(env), m_dir(std::move(dir)), m_read_only(read_only), m_max_map_size(max_map_size) {}
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env() { mdb_env_close(m_env); }

  MDB_env* handle() const { return m_env; }
  const std::string& dir() const { return m_dir; }
  bool read_only() const { return m_read_only; }

  MDB_dbi ac = 0;
  MDB_dbi cas = 0;
  MDB_dbi meta = 0;

  // "<what> in cache <dir>: <LMDB or OS error>".
  std::string error(const std::string& what, int rc) const {
    return what + " in cache " + m_dir + ": " + mdb_strerror(rc);
  }

  // Runs body(txn, failure) in a read-only transaction, adopting a grown map and retrying when
  // another process has grown it. The body must be safe to run more than once.
  template <typename Body>
  Expected<void, Failure> read(const char* what, Body&& body) {
    return run(what, MDB_RDONLY, std::forward<Body>(body));
  }

  // Runs body(txn, failure) in a write transaction and commits it. MDB_MAP_FULL (from the body or
  // the commit) grows the map and runs the body again.
  template <typename Body>
  Expected<void, Failure> write(const char* what, Body&& body) {
    return run(what, 0, std::forward<Body>(body));
  }

 private:
  template <typename Body>
  Expected<void, Failure> run(const char* what, unsigned flags, Body&& body) {
    bool readers_checked = false;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      std::shared_lock lock(m_resize_mutex);
      MDB_envinfo info;
      mdb_env_info(m_env, &info);
      const uint64_t map_size = info.me_mapsize;
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(m_env, nullptr, flags, &txn);
      if (rc == MDB_MAP_RESIZED) {
        lock.unlock();
        KG_TRY(adopt_map_size());
        continue;
      }
      if (rc == MDB_READERS_FULL && !readers_checked) {
        // Slots may be held by crashed processes.
        int dead = 0;
        mdb_reader_check(m_env, &dead);
        readers_checked = true;
        continue;
      }
      if (rc != 0) {
        return fail(error(std::string(what) + ": cannot begin a transaction", rc));
      }
      Failure failure;
      rc = body(txn, failure);
      if (rc == 0 && (flags & MDB_RDONLY) == 0) {
        rc = mdb_txn_commit(txn);  // frees txn, whatever it returns
      } else {
        mdb_txn_abort(txn);
      }
      if (rc == 0) {
        return {};
      }
      if (rc == kBodyFailed) {
        return unexpected(std::move(failure));
      }
      if (rc == MDB_MAP_FULL) {
        lock.unlock();
        KG_TRY(grow_map(map_size));
        continue;
      }
      return fail(error(what, rc));
    }
    return fail(std::string(what) + " in cache " + m_dir + ": the map size does not settle; giving up");
  }

  // Doubles the map unless another thread already grew it past `seen`. No transaction of this
  // process may be open meanwhile (LMDB's rule for mdb_env_set_mapsize): the exclusive lock
  // waits for them.
  Expected<void, Failure> grow_map(uint64_t seen) {
    std::unique_lock lock(m_resize_mutex);
    MDB_envinfo info;
    mdb_env_info(m_env, &info);
    if (info.me_mapsize > seen) {
      return {};
    }
    if (seen >= m_max_map_size) {
      return fail("cache " + m_dir + " is full: it needs more than " + std::to_string(m_max_map_size >> 20) +
                  " MiB of map; run `kernelgen cache gc` or use another cache directory");
    }
    const uint64_t next = std::min(std::max<uint64_t>(seen * 2, 1 << 20), m_max_map_size);
    int rc = mdb_env_set_mapsize(m_env, next);
    if (rc != 0) {
      return fail(error("cannot grow the map to " + std::to_string(next) + " bytes", rc));
    }
    return {};
  }

  // Another process wrote beyond our map: take the size it recorded, never shrinking ours.
  Expected<void, Failure> adopt_map_size() {
    std::unique_lock lock(m_resize_mutex);
    MDB_envinfo before;
    mdb_env_info(m_env, &before);
    int rc = mdb_env_set_mapsize(m_env, 0);
    if (rc != 0) {
      return fail(error("cannot adopt the map size grown by another process", rc));
    }
    MDB_envinfo after;
    mdb_env_info(m_env, &after);
    if (after.me_mapsize < before.me_mapsize) {
      mdb_env_set_mapsize(m_env, before.me_mapsize);  // rounds up to the data in use
    }
    return {};
  }

  MDB_env* m_env;
  std::string m_dir;
  bool m_read_only;
  uint64_t m_max_map_size;
  std::shared_mutex m_resize_mutex;  // shared: a transaction is open; exclusive: resizing
};

// Open environments of this process, by directory identity, with the number of LocalCache
// handles on each. Counting and closing happen under one mutex so that a close never overlaps
// an open of the same directory. The pid is part of the id: a forked child that opens the cache
// gets its own environment, never the parent's (whose entry the child leaves alone).
using EnvId = std::tuple<pid_t, dev_t, ino_t>;
struct Registered {
  std::unique_ptr<Env> env;
  int users = 0;
};
struct Registry {
  std::mutex mutex;
  std::map<EnvId, Registered> open;
};

// Never destroyed, so that a LocalCache in static storage can still close at exit.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void release_env(const EnvId& id) {
  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  auto it = reg.open.find(id);
  if (it != reg.open.end() && --it->second.users == 0) {
    reg.open.erase(it);  // mdb_env_close
  }
}

// Creates the named databases (unless read-only) and checks the format.
Expected<void, Failure> init_databases(Env& env) {
  const std::string& dir = env.dir();
  const std::string want = format_string();
  auto body = [&](MDB_txn* txn, Failure& failure) -> int {
    const unsigned create = env.read_only() ? 0 : MDB_CREATE;
    MDB_dbi main_dbi;
    int rc = mdb_dbi_open(txn, nullptr, 0, &main_dbi);
    if (rc != 0) {
      return rc;
    }
    rc = mdb_dbi_open(txn, "meta", create, &env.meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
      MDB_stat st;
      mdb_stat(txn, main_dbi, &st);
      if (rc == MDB_INCOMPATIBLE || st.ms_entries > 0) {
        failure = {Failure::Kind::Error, "the LMDB environment in " + dir +
                                             " is not a kernelgen cache; use another cache directory"};
      } else {
        failure = {Failure::Kind::NotFound, "no kernelgen cache in " + dir + " (it is empty)"};
      }
      return kBodyFailed;
    }
    if (rc != 0) {
      return rc;
    }
    MDB_val key = as_val("format");
    MDB_val val;
    rc = mdb_get(txn, env.meta, &key, &val);
    if (rc == MDB_NOTFOUND && !env.read_only()) {
      MDB_stat st;
      mdb_stat(txn, main_dbi, &st);
      if (st.ms_entries > 1) {  // anything besides the `meta` we just created
        failure = {Failure::Kind::Error, "the LMDB environment in " + dir +
                                             " is not a kernelgen cache; use another cache directory"};
        return kBodyFailed;
      }
      MDB_val v = as_val(want);
      rc = mdb_put(txn, env.meta, &key, &v, 0);
      if (rc != 0) {
        return rc;
      }
    } else if (rc == MDB_NOTFOUND) {
      failure = {Failure::Kind::Error,
                 "the cache in " + dir + " has no format version; it is not a kernelgen cache"};
      return kBodyFailed;
    } else if (rc != 0) {
      return rc;
    } else if (as_view(val) != want) {
      failure = {Failure::Kind::Error, "the cache in " + dir + " has format " + std::string(as_view(val)) +
                                           ", but kernelgen " + kVersion + " uses format " + want +
                                           "; set KERNELGEN_CACHE_DIR to another directory or remove " + dir};
      return kBodyFailed;
    }
    if ((rc = mdb_dbi_open(txn, "ac", create, &env.ac)) != 0) {
      return rc;
    }
    return mdb_dbi_open(txn, "cas", create, &env.cas);
  };
  if (env.read_only()) {
    // A read-only transaction keeps its database handles only when committed, which run() does
    // not do for reads; do it by hand (no resize can be pending right after mdb_env_open).
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env.handle(), nullptr, MDB_RDONLY, &txn);
    if (rc != 0) {
      return fail(env.error("cannot read", rc));
    }
    Failure failure;
    rc = body(txn, failure);
    if (rc != 0) {
      mdb_txn_abort(txn);
      if (rc == kBodyFailed) {
        return unexpected(std::move(failure));
      }
      return fail(env.error("cannot open the databases", rc));
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
      return fail(env.error("cannot open the databases", rc));
    }
    return {};
  }
  return env.write("cannot open the databases", body);
}

// Returns the environment for `dir` with one more user counted, and its id for release_env().
Expected<std::pair<Env*, EnvId>, Failure> open_env(const std::string& dir,
                                                   const LocalCache::Options& options) {
  struct stat st;
  if (options.read_only) {
    std::string data = dir + "/data.mdb";
    if (::stat(data.c_str(), &st) != 0) {
      return fail("no kernelgen cache in " + dir + " (" + data + ": " + std::strerror(errno) + ")",
                  Failure::Kind::NotFound);
    }
  } else {
    auto made = make_dirs(dir, 0700);
    if (!made) {
      return fail("cannot create the cache directory " + dir + ": " + made.error().message);
    }
  }
  if (::stat(dir.c_str(), &st) != 0) {
    return fail("cannot use the cache directory " + dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail("the cache directory " + dir + " is not a directory");
  }
  if (!options.read_only && ::access(dir.c_str(), W_OK | X_OK) != 0) {
    return fail("the cache directory " + dir + " is not writable: " + std::strerror(errno));
  }

  Registry& reg = registry();
  std::lock_guard lock(reg.mutex);
  const EnvId id{::getpid(), st.st_dev, st.st_ino};
  if (auto it = reg.open.find(id); it != reg.open.end()) {
    Env* open = it->second.env.get();
    if (open->read_only() && !options.read_only) {
      return fail("the cache in " + dir + " is already open read-only in this process (as " + open->dir() +
                  "); cannot also open it for writing");
    }
    ++it->second.users;
    return std::make_pair(open, id);
  }

  MDB_env* raw = nullptr;
  int rc = mdb_env_create(&raw);
  if (rc != 0) {
    return fail("cannot create an LMDB environment for cache " + dir + ": " + mdb_strerror(rc));
  }
  // ~Env closes it from here on, also when opening fails (mdb_env_open requires that).
  auto env = std::make_unique<Env>(raw, dir, options.read_only, options.max_map_size);
  mdb_env_set_maxdbs(raw, 4);
  mdb_env_set_mapsize(raw, options.initial_map_size);
  const unsigned flags = MDB_NOTLS | (options.read_only ? MDB_RDONLY : 0);
  rc = mdb_env_open(raw, dir.c_str(), flags, 0600);
  if (rc != 0) {
    return fail(env->error("cannot open the LMDB environment", rc));
  }
  int dead = 0;
  mdb_reader_check(raw, &dead);  // reader slots of crashed processes
  KG_TRY(init_databases(*env));

  Env* opened = env.get();
  reg.open[id] = Registered{std::move(env), 1};
  return std::make_pair(opened, id);
}

// The stored form: the record's fields and the format version.
nlohmann::json to_json(const AcRecord& r) {
  nlohmann::json j = record_json(r);
  j["format"] = kCacheFormatVersion;
  return j;
}

// Parses a stored record; on failure returns why it is corrupt.
Expected<AcRecord, Failure> parse_record(const std::string& key, std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("not a JSON object");
  }
  try {
    if (j.at("format").get<int>() != kCacheFormatVersion) {
      return fail("record format " + j.at("format").dump());
    }
    AcRecord r;
    r.key = j.at("key").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.arch = j.at("arch").get<std::string>();
    r.generator = j.at("generator").get<std::string>();
    r.source_digest = j.at("source_digest").get<std::string>();
    r.header_digest = j.at("header_digest").get<std::string>();
    r.report_digest = j.at("report_digest").get<std::string>();
    r.canonical_digest = j.at("canonical_digest").get<std::string>();
    const auto verification = parse_verification(j.at("verification").get<std::string>());
    if (!verification) {
      return fail("unknown verification state " + j.at("verification").dump());
    }
    r.verification = *verification;
    r.created_unix = j.at("created_unix").get<int64_t>();
    r.last_access_unix = j.at("last_access_unix").get<int64_t>();
    if (r.key != key) {
      return fail("stored under " + key + " but names " + r.key);
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return fail(e.what());
  }
}

}  // namespace

struct LocalCache::Impl {
  Impl(Env* e, EnvId i) : env(e), id(i) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { release_env(id); }

  Env* env;
  EnvId id;
  bool read_only = false;
  std::function<void(const std::string&)> on_warning;

  void warn(const std::string& line) const {
    if (on_warning) {
      on_warning(line);
    } else {
      KG_LOG_WARN(line);
    }
  }

  Expected<void, Failure> check_writable(const char* what) const {
    if (read_only) {
      return fail(std::string("cannot ") + what + ": the cache " + env->dir() + " is open read-only");
    }
    return {};
  }

  // The raw bytes under `key` in `dbi`; NotFound when absent.
  Expected<std::string, Failure> get_raw(MDB_dbi dbi, const std::string& key, const char* what) {
    std::string out;
    bool found = false;
    KG_TRY(env->read(what, [&](MDB_txn* txn, Failure&) -> int {
      MDB_val k = as_val(key);
      MDB_val v;
      int rc = mdb_get(txn, dbi, &k, &v);
      if (rc == MDB_NOTFOUND) {
        found = false;
        return 0;
      }
      if (rc == 0) {
        found = true;
        out.assign(as_view(v));
      }
      return rc;
    }));
    if (!found) {
      return fail(std::string(what) + ": " + key + " is not in cache " + env->dir(), Failure::Kind::NotFound);
    }
    return out;
  }

  // Deletes `key` from `dbi` if `still_bad(bytes now stored)` says so (another process may have
  // repaired it meanwhile). Failures are only logged: the caller reports a miss either way.
  template <typename Pred>
  void evict_if(MDB_dbi dbi, const std::string& key, Pred&& still_bad) {
    auto done = env->write("cannot evict a corrupt entry", [&](MDB_txn* txn, Failure&) -> int {
      MDB_val k = as_val(key);
      MDB_val v;
      int rc = mdb_get(txn, dbi, &k, &v);
      if (rc != 0) {
        return rc == MDB_NOTFOUND ? 0 : rc;
      }
      return still_bad(as_view(v)) ? mdb_del(txn, dbi, &k, nullptr) : 0;
    });
    if (!done) {
      warn("cache: " + done.error().message);
    }
  }

  // Parses a record read under `key`; a corrupt one is logged, evicted and reported as NotFound.
  Expected<AcRecord, Failure> decode_record(const std::string& key, const std::string& bytes) {
    auto record = parse_record(key, bytes);
    if (record) {
      return record;
    }
    if (read_only) {
      warn("cache: record " + key + " is corrupt (" + record.error().message +
           "); not evicted (read-only cache)");
    } else {
      warn("cache: record " + key + " is corrupt (" + record.error().message + "); evicted");
      evict_if(env->ac, key, [&](std::string_view now) { return now == bytes; });
    }
    return fail("record " + key + " in cache " + env->dir() + " was corrupt", Failure::Kind::NotFound);
  }
};

LocalCache::LocalCache(std::unique_ptr<Impl> impl, std::string dir)
    : m_impl(std::move(impl)), m_dir(std::move(dir)) {}
LocalCache::LocalCache(LocalCache&&) noexcept = default;
LocalCache& LocalCache::operator=(LocalCache&&) noexcept = default;
LocalCache::~LocalCache() = default;

bool LocalCache::read_only() const { return m_impl->read_only; }

Expected<LocalCache, Failure> LocalCache::open(const std::string& dir, bool read_only) {
  Options options;
  options.read_only = read_only;
  return open(dir, options);
}

Expected<LocalCache, Failure> LocalCache::open(const std::string& dir, const Options& options) {
  auto env = open_env(dir, options);
  if (!env) {
    return unexpected(env.error());
  }
  auto impl = std::make_unique<Impl>(env->first, env->second);
  impl->read_only = options.read_only;
  impl->on_warning = options.on_warning;
  return LocalCache(std::move(impl), dir);
}

Expected<AcRecord, Failure> LocalCache::get_record(const std::string& key) {
  if (!is_digest(key)) {
    return fail("no record for " + key + ": not a key", Failure::Kind::NotFound);
  }
  auto bytes = m_impl->get_raw(m_impl->env->ac, key, "cannot read record");
  if (!bytes) {
    return unexpected(bytes.error());
  }
  return m_impl->decode_record(key, *bytes);
}

Expected<void, Failure> LocalCache::put_record(const AcRecord& record) {
  KG_TRY(m_impl->check_writable("store a record"));
  if (!is_digest(record.key)) {
    return fail("cannot store a record under \"" + record.key + "\": not a key");
  }
  const std::pair<const char*, const std::string*> refs[] = {
      {"source_digest", &record.source_digest},
      {"header_digest", &record.header_digest},
      {"report_digest", &record.report_digest},
      {"canonical_digest", &record.canonical_digest},
  };
  for (const auto& [field, digest] : refs) {
    if (!digest->empty() && !is_digest(*digest)) {
      return fail("cannot store record " + record.key + ": " + field + " \"" + *digest +
                  "\" is not a digest");
    }
  }
  const std::string text = to_json(record).dump();
  Env& env = *m_impl->env;
  return env.write("cannot store a record", [&](MDB_txn* txn, Failure& failure) -> int {
    for (const auto& [field, digest] : refs) {
      if (digest->empty()) {
        continue;
      }
      MDB_val k = as_val(*digest);
      MDB_val v;
      int rc = mdb_get(txn, env.cas, &k, &v);
      if (rc == MDB_NOTFOUND) {
        failure = {Failure::Kind::Error, "cannot store record " + record.key + ": its " + field + " " +
                                             *digest + " is not in cache " + env.dir() +
                                             " (store blobs first)"};
        return kBodyFailed;
      }
      if (rc != 0) {
        return rc;
      }
    }
    MDB_val k = as_val(record.key);
    MDB_val v = as_val(text);
    return mdb_put(txn, env.ac, &k, &v, 0);
  });
}

Expected<void, Failure> LocalCache::remove_record(const std::string& key) {
  KG_TRY(m_impl->check_writable("remove a record"));
  Env& env = *m_impl->env;
  return env.write("cannot remove a record", [&](MDB_txn* txn, Failure& failure) -> int {
    MDB_val k = as_val(key);
    int rc = mdb_del(txn, env.ac, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
      failure = {Failure::Kind::NotFound, "no record " + key + " in cache " + env.dir()};
      return kBodyFailed;
    }
    return rc;
  });
}

Expected<bool, Failure> LocalCache::touch(const std::string& key, int64_t now_unix) {
  KG_TRY(m_impl->check_writable("record an access"));
  if (now_unix == 0) {
    now_unix = static_cast<int64_t>(std::time(nullptr));
  }
  // The common case, a recent access, only reads.
  auto current = get_record(key);
  if (!current) {
    return unexpected(current.error());
  }
  if (now_unix - current->last_access_unix < kTouchIntervalSeconds) {
    return false;
  }
  Env& env = *m_impl->env;
  bool wrote = false;
  KG_TRY(env.write("cannot record an access", [&](MDB_txn* txn, Failure& failure) -> int {
    wrote = false;
    MDB_val k = as_val(key);
    MDB_val v;
    int rc = mdb_get(txn, env.ac, &k, &v);
    if (rc == MDB_NOTFOUND) {
      failure = {Failure::Kind::NotFound, "record " + key + " was removed from cache " + env.dir()};
      return kBodyFailed;
    }
    if (rc != 0) {
      return rc;
    }
    auto record = parse_record(key, as_view(v));
    if (!record || now_unix - record->last_access_unix < kTouchIntervalSeconds) {
      return 0;  // corrupt (the next read evicts it) or touched by someone else meanwhile
    }
    record->last_access_unix = now_unix;
    const std::string text = to_json(*record).dump();
    MDB_val nv = as_val(text);
    rc = mdb_put(txn, env.ac, &k, &nv, 0);
    wrote = rc == 0;
    return rc;
  }));
  return wrote;
}

Expected<std::string, Failure> LocalCache::get_blob(const std::string& digest) {
  if (!is_digest(digest)) {
    return fail("no blob " + digest + ": not a digest", Failure::Kind::NotFound);
  }
  auto bytes = m_impl->get_raw(m_impl->env->cas, digest, "cannot read blob");
  if (!bytes) {
    return unexpected(bytes.error());
  }
  if (xxh3_128_hex(*bytes) == digest) {
    return bytes;
  }
  if (m_impl->read_only) {
    m_impl->warn("cache: blob " + digest + " failed its digest check; not evicted (read-only cache)");
  } else {
    m_impl->warn("cache: blob " + digest + " failed its digest check; evicted");
    m_impl->evict_if(m_impl->env->cas, digest,
                     [&](std::string_view now) { return xxh3_128_hex(now) != digest; });
  }
  return fail("blob " + digest + " in cache " + m_dir + " was corrupt", Failure::Kind::NotFound);
}

Expected<std::string, Failure> LocalCache::put_blob(const std::string& content) {
  KG_TRY(m_impl->check_writable("store a blob"));
  std::string digest = xxh3_128_hex(content);
  // Storing what is already there is common (identical headers, re-runs): check without taking
  // the writer lock first.
  auto existing = m_impl->get_raw(m_impl->env->cas, digest, "cannot read blob");
  if (existing && *existing == content) {
    return digest;
  }
  if (!existing && existing.error().kind != Failure::Kind::NotFound) {
    return unexpected(existing.error());
  }
  Env& env = *m_impl->env;
  bool replaced = false;
  KG_TRY(env.write("cannot store a blob", [&](MDB_txn* txn, Failure&) -> int {
    replaced = false;
    MDB_val k = as_val(digest);
    MDB_val v = as_val(content);
    int rc = mdb_put(txn, env.cas, &k, &v, MDB_NOOVERWRITE);
    if (rc != MDB_KEYEXIST) {
      return rc;
    }
    if (as_view(v) == content) {  // v now points at the stored bytes
      return 0;
    }
    replaced = true;  // same digest, other bytes: the stored entry is corrupt
    v = as_val(content);
    return mdb_put(txn, env.cas, &k, &v, 0);
  }));
  if (replaced) {
    m_impl->warn("cache: blob " + digest + " failed its digest check; replaced");
  }
  return digest;
}

Expected<void, Failure> LocalCache::remove_blob(const std::string& digest) {
  KG_TRY(m_impl->check_writable("remove a blob"));
  Env& env = *m_impl->env;
  return env.write("cannot remove a blob", [&](MDB_txn* txn, Failure& failure) -> int {
    MDB_val k = as_val(digest);
    int rc = mdb_del(txn, env.cas, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
      failure = {Failure::Kind::NotFound, "no blob " + digest + " in cache " + env.dir()};
      return kBodyFailed;
    }
    return rc;
  });
}

Expected<std::vector<AcRecord>, Failure> LocalCache::list_records() {
  Env& env = *m_impl->env;
  std::vector<std::pair<std::string, std::string>> raw;
  KG_TRY(env.read("cannot list records", [&](MDB_txn* txn, Failure&) -> int {
    raw.clear();
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn, env.ac, &cursor);
    if (rc != 0) {
      return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) == 0) {
      raw.emplace_back(std::string(as_view(k)), std::string(as_view(v)));
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }));
  std::vector<AcRecord> out;
  out.reserve(raw.size());
  for (const auto& [key, bytes] : raw) {
    auto record = m_impl->decode_record(key, bytes);
    if (record) {
      out.push_back(std::move(*record));
    }
  }
  std::sort(out.begin(), out.end(), [](const AcRecord& a, const AcRecord& b) {
    return std::tie(a.name, a.key) < std::tie(b.name, b.key);
  });
  return out;
}

Expected<Stats, Failure> LocalCache::stats() {
  Env& env = *m_impl->env;
  Stats s;
  KG_TRY(env.read("cannot read statistics", [&](MDB_txn* txn, Failure&) -> int {
    s = Stats{};
    MDB_stat st;
    int rc = mdb_stat(txn, env.ac, &st);
    if (rc != 0) {
      return rc;
    }
    s.ac_entries = st.ms_entries;
    if ((rc = mdb_stat(txn, env.cas, &st)) != 0) {
      return rc;
    }
    s.cas_entries = st.ms_entries;
    // Reading a value's MDB_val only computes where its pages are; it does not touch them.
    MDB_cursor* cursor = nullptr;
    if ((rc = mdb_cursor_open(txn, env.cas, &cursor)) != 0) {
      return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) == 0) {
      s.cas_bytes += v.mv_size;
    }
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND) {
      return rc;
    }
    MDB_envinfo info;
    mdb_env_info(env.handle(), &info);
    MDB_stat env_stat;
    mdb_env_stat(env.handle(), &env_stat);
    s.map_size = info.me_mapsize;
    s.used_bytes = (static_cast<uint64_t>(info.me_last_pgno) + 1) * env_stat.ms_psize;
    return 0;
  }));
  return s;
}

std::string default_cache_dir() {
  if (const char* dir = std::getenv("KERNELGEN_CACHE_DIR"); dir && *dir) {
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/') {
    return std::string(xdg) + "/kernelgen";
  }
  std::string home;
  if (const char* h = std::getenv("HOME"); h && *h) {
    home = h;
  } else if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) {
    home = pw->pw_dir;
  }
  return home + "/.cache/kernelgen";
}

nlohmann::json record_json(const AcRecord& r) {
  return nlohmann::json{
      {"key", r.key},
      {"name", r.name},
      {"arch", r.arch},
      {"generator", r.generator},
      {"source_digest", r.source_digest},
      {"header_digest", r.header_digest},
      {"report_digest", r.report_digest},
      {"canonical_digest", r.canonical_digest},
      {"verification", verification_name(r.verification)},
      {"created_unix", r.created_unix},
      {"last_access_unix", r.last_access_unix},
  };
}

}  // namespace kg::cache

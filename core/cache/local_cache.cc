#include "cache/local_cache.h"

#include <fcntl.h>
#include <lmdb.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <tuple>
#include <utility>

#include "cache/cache_dir.h"
#include "cache/lmdb_txn.h"
#include "cache/validate.h"
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

// A data file that changes under every check (a writer committing all the time) is opened after
// this many tries without the full check (the file is in use by writers, which have checked it).
constexpr int kMaxCheckAttempts = 8;

MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

std::string format_string() { return std::to_string(kCacheFormatVersion); }

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// LMDB results that mean the files are damaged, not that the call was wrong.
bool is_damage(int rc) {
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
         rc == MDB_CURSOR_FULL || rc == MDB_BAD_TXN || rc == MDB_BAD_DBI || rc == MDB_INCOMPATIBLE;
}

// "<what> in cache <dir>: <LMDB or OS error>", saying "No space left on device" plainly when that
// is the cause (LMDB reports a short write as EIO: `data_fd` >= 0 lets that be told apart).
std::string lmdb_error(const std::string& what, const std::string& dir, int rc, int data_fd = -1) {
  if (rc == EIO && data_fd >= 0 && out_of_space(data_fd)) {
    rc = ENOSPC;
  }
  if (rc == ENOSPC || rc == EDQUOT) {
    // strerror(ENOSPC) even for EDQUOT, so that every out-of-space failure reads the same.
    return what + " in cache " + dir + ": " + std::strerror(ENOSPC) + " (" +
           (rc == EDQUOT ? "the disk quota is exceeded" : "the file system is full") + "); free space in " + dir +
           " or set KERNELGEN_CACHE_DIR to a directory on another file system";
  }
  return what + " in cache " + dir + ": " + mdb_strerror(rc);
}

// Writes the check stamp (cache_dir.h) in place, with the directory lock held (as every reader of
// it holds it). Not a temporary file and rename, and no fsync: after each write to data.mdb the
// next process writes a stamp, and a rename over the old one cost 2-3 ms here (ext4 flushes a
// file renamed over another), on every remote hit. Nothing depends on the stamp surviving: a
// stamp that is lost, torn or stale never matches data.mdb exactly, and then the full check runs
// again. Something other than a private regular file under its name is left alone (and never
// matches either).
void write_stamp(int dirfd, const std::string& text) {
  int fd = ::openat(dirfd, kCheckedStamp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return;
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 022) == 0 &&
      st.st_nlink == 1) {
    if (::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size())) {
      (void)::ftruncate(fd, static_cast<off_t>(text.size()));
    } else {
      (void)::ftruncate(fd, 0);  // a short write: no stamp rather than a wrong one
    }
  }
  ::close(fd);
}

// One open LMDB environment. Shared by every LocalCache on the same directory in this process,
// because LMDB must not open one environment twice in a process (closing the second copy would
// drop the first one's POSIX locks).
class Env {
 public:
  Env(std::string dir, const LocalCache::Options& options)
      : m_dir(std::move(dir)),
        m_read_only(options.read_only),
        m_initial_map_size(options.initial_map_size),
        m_max_map_size(options.max_map_size),
        m_on_warning(options.on_warning) {}
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env() { close(); }

  const std::string& dir() const { return m_dir; }
  bool read_only() const { return m_read_only; }

  MDB_dbi ac = 0;
  MDB_dbi cas = 0;
  MDB_dbi meta = 0;

  void warn(const std::string& line) const {
    if (m_on_warning) {
      m_on_warning(line);
    } else {
      KG_LOG_WARN(line);
    }
  }

  // "<what> in cache <dir>: <LMDB or OS error>".
  std::string error(const std::string& what, int rc) const { return lmdb_error(what, m_dir, rc, data_fd()); }

  // Opens the environment: checks the directory and its files, moves damaged files aside (one
  // warning), then lets LMDB map them. Called once, before the Env is shared.
  // Errors: NotFound (read-only and no cache), Error (see LocalCache::open).
  Expected<void, Failure> open() {
    for (int attempt = 0;; ++attempt) {
      auto lock = DirLock::take(m_dir);
      if (!lock) {
        return unexpected(lock.error());
      }
      auto opened = open_locked(*lock);
      if (opened || opened.error().kind != Failure::Kind::Timeout) {
        return opened;
      }
      if (attempt > 0) {
        return fail(opened.error().message);
      }
      // Timeout here means: LMDB found damage the check did not; the files were moved aside.
    }
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

  // The map size and used bytes, for stats(). Caller is inside a transaction (shared lock held).
  std::pair<uint64_t, uint64_t> sizes() const {
    MDB_envinfo info;
    mdb_env_info(m_env, &info);
    MDB_stat st;
    mdb_env_stat(m_env, &st);
    return {info.me_mapsize, (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize};
  }

 private:
  int data_fd() const {
    int fd = -1;
    if (m_env == nullptr || mdb_env_get_fd(m_env, &fd) != 0) {
      return -1;
    }
    return fd;
  }

  void close() {
    if (m_env != nullptr) {
      mdb_env_close(m_env);
      m_env = nullptr;
    }
  }

  // open() with the directory lock held. Timeout kind: damage found by LMDB; moved aside, retry.
  Expected<void, Failure> open_locked(const DirLock& lock) {
    struct stat data_st, lock_st;
    auto data_exists = check_own_file(m_dir, lock.fd(), "data.mdb", data_st);
    if (!data_exists) {
      return unexpected(data_exists.error());
    }
    auto lock_exists = check_own_file(m_dir, lock.fd(), "lock.mdb", lock_st);
    if (!lock_exists) {
      return unexpected(lock_exists.error());
    }
    std::optional<FileId> checked;
    if (*data_exists) {
      auto verdict = check_files(lock, *lock_exists, lock_st);
      if (!verdict) {
        return unexpected(verdict.error());
      }
      if (*verdict) {
        checked = FileId{data_st.st_dev, data_st.st_ino};
      } else {
        // Moved aside or removed: there is no cache now.
        data_exists = false;
        lock_exists = false;
      }
    }
    if (!*data_exists && m_read_only) {
      return fail("no kernelgen cache in " + m_dir + " (" + m_dir + "/data.mdb: No such file or directory)",
                  Failure::Kind::NotFound);
    }
    // Read-only too: LMDB creates a missing lock.mdb for readers as well.
    KG_TRY(allocate_lock_file(m_dir, lock.fd(), *lock_exists, lock_st));

    int rc = mdb_env_create(&m_env);
    if (rc != 0) {
      m_env = nullptr;
      return fail("cannot create an LMDB environment for cache " + m_dir + ": " + mdb_strerror(rc));
    }
    mdb_env_set_maxdbs(m_env, 4);
    mdb_env_set_mapsize(m_env, m_initial_map_size);
    // No MDB_WRITEMAP: LMDB writes with pwrite(), so a full disk is an error code, never a fault
    // through the map; readers map only pages the check above found inside the file.
    const unsigned flags = MDB_NOTLS | (m_read_only ? MDB_RDONLY : 0);
    rc = mdb_env_open(m_env, m_dir.c_str(), flags, 0600);
    if (rc != 0) {
      close();  // mdb_env_open requires it on failure
      if (is_damage(rc) && checked) {
        return aside_after_lmdb(lock, *checked, std::string("LMDB cannot open it: ") + mdb_strerror(rc));
      }
      return fail(lmdb_error("cannot open the LMDB environment", m_dir, rc));
    }
    if (checked) {
      // LMDB opened the file by name: it must be the one checked.
      struct stat st;
      int fd = data_fd();
      if (fd < 0 || ::fstat(fd, &st) != 0 || !(FileId{st.st_dev, st.st_ino} == *checked)) {
        close();
        return fail("the cache " + m_dir + " changed while it was opened; try again");
      }
    }
    int dead = 0;
    mdb_reader_check(m_env, &dead);  // reader slots of crashed processes
    auto init = init_databases();
    if (!init) {
      close();
      if (init.error().kind == Failure::Kind::Timeout && checked) {
        return aside_after_lmdb(lock, *checked, init.error().message);
      }
      if (init.error().kind == Failure::Kind::Timeout) {
        return fail(init.error().message);
      }
      return unexpected(init.error());
    }
    m_id = checked.value_or(FileId{});
    if (!checked) {
      struct stat st;
      if (int fd = data_fd(); fd >= 0 && ::fstat(fd, &st) == 0) {
        m_id = FileId{st.st_dev, st.st_ino};
      }
    }
    return {};
  }

  Expected<void, Failure> aside_after_lmdb(const DirLock& lock, const FileId& id, const std::string& why) {
    auto moved = move_aside(m_dir, lock, &id);
    if (!moved) {
      return fail("the cache " + m_dir + " is damaged (" + why + ") and cannot be moved aside: " +
                  moved.error().message);
    }
    if (!moved->empty()) {
      warn("cache: " + m_dir + " was damaged (" + why + "); moved it to " + *moved + " and starting an empty cache");
    }
    return fail("the cache " + m_dir + " was damaged (" + why + ") and moved aside; opening an empty one failed",
                Failure::Kind::Timeout);
  }

  // Checks data.mdb and lock.mdb before LMDB maps them. Returns true when they may be opened,
  // false when they were moved aside (damage; one warning) or removed (an incomplete creation).
  Expected<bool, Failure> check_files(const DirLock& lock, bool lock_exists, const struct stat& lock_st) {
    const std::string path = m_dir + "/data.mdb";
    int fd = ::openat(lock.fd(), "data.mdb", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return fail(os_error("cannot open", path));
    }
    // The full walk costs about 4 ms per thousand kernels cached; a file that passed it and has
    // not changed since gets the meta-page check only.
    struct stat before;
    const bool have_before = ::fstat(fd, &before) == 0;
    const bool walk = !have_before || !stamp_matches(lock.fd(), before);
    Expected<DataFileCheck, Failure> check = fail("not checked");
    for (int attempt = 0; attempt < kMaxCheckAttempts; ++attempt) {
      check = check_data_file(fd, path, walk);
      if (!check || check->verdict != DataFileCheck::Verdict::Busy) {
        break;
      }
    }
    struct stat st;
    const bool have_id = ::fstat(fd, &st) == 0;
    ::close(fd);
    if (check && check->verdict == DataFileCheck::Verdict::Sound && walk && have_before && have_id &&
        stamp_of(before) == stamp_of(st)) {
      // Best effort: a directory this process cannot write just means checking again next time.
      write_stamp(lock.fd(), stamp_of(st));
    }
    if (!check) {
      return unexpected(check.error());
    }
    const FileId id{have_id ? st.st_dev : 0, have_id ? st.st_ino : 0};
    std::string why;
    switch (check->verdict) {
      case DataFileCheck::Verdict::Empty:
      case DataFileCheck::Verdict::Busy:  // in constant use by writers: they opened it after a check
        break;
      case DataFileCheck::Verdict::Sound:
        KG_LOG_DEBUG("cache " << m_dir << ": data.mdb checked (" << (walk ? "full, " : "meta pages, ")
                              << check->pages_read << " pages read)");
        break;
      case DataFileCheck::Verdict::Incomplete:
        // Its creation failed (a full disk): nothing was ever committed to it. Start again.
        if (m_read_only) {
          return false;
        }
        KG_LOG_DEBUG("cache " << m_dir << ": removing data.mdb, " << check->why);
        if (::unlinkat(lock.fd(), "data.mdb", 0) != 0) {
          return fail(os_error("cannot remove the incomplete", path));
        }
        ::unlinkat(lock.fd(), "lock.mdb", 0);
        return false;
      case DataFileCheck::Verdict::Damaged:
        why = "data.mdb: " + check->why;
        break;
    }
    if (why.empty() && lock_exists) {
      int lfd = ::openat(lock.fd(), "lock.mdb", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (lfd < 0) {
        return fail(os_error("cannot open", m_dir + "/lock.mdb"));
      }
      auto lock_why = check_lock_file(lfd, static_cast<uint64_t>(lock_st.st_size), m_dir + "/lock.mdb");
      ::close(lfd);
      if (!lock_why) {
        return unexpected(lock_why.error());
      }
      if (!lock_why->empty()) {
        why = "lock.mdb: " + *lock_why;
      }
    }
    if (why.empty()) {
      return true;
    }
    auto moved = move_aside(m_dir, lock, &id);
    if (!moved) {
      return fail("the cache " + m_dir + " is damaged (" + why + ") and cannot be moved aside: " +
                  moved.error().message);
    }
    if (!moved->empty()) {
      warn("cache: " + m_dir + " was damaged (" + why + "); moved it to " + *moved +
           (m_read_only ? "" : " and starting an empty cache"));
    }
    return false;
  }

  // Creates the named databases (unless read-only) and checks the format. Timeout kind: LMDB
  // reported damage.
  Expected<void, Failure> init_databases();

  template <typename Body>
  Expected<void, Failure> run(const char* what, unsigned flags, Body&& body);

  Expected<void, Failure> grow_map(uint64_t seen);
  Expected<void, Failure> adopt_map_size();
  // LMDB reported damage (`rc`) in a transaction begun at generation `seen`: unless another
  // thread did it already, close the environment, move its files aside (one warning) and, unless
  // read-only, open an empty cache in their place.
  void recover(uint64_t seen, const std::string& what, int rc);

  MDB_env* m_env = nullptr;  // null: read-only and moved aside (every read is a miss)
  FileId m_id;               // the data file LMDB has open
  uint64_t m_generation = 0;  // counts recoveries
  std::string m_dir;
  bool m_read_only;
  uint64_t m_initial_map_size;
  uint64_t m_max_map_size;
  std::function<void(const std::string&)> m_on_warning;
  std::shared_mutex m_resize_mutex;  // shared: a transaction is open; exclusive: resizing, recovering
};

template <typename Body>
Expected<void, Failure> Env::run(const char* what, unsigned flags, Body&& body) {
  bool readers_checked = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    std::shared_lock lock(m_resize_mutex);
    if (m_env == nullptr) {
      return fail(std::string(what) + ": the cache " + m_dir + " was damaged and moved aside",
                  Failure::Kind::NotFound);
    }
    const uint64_t generation = m_generation;
    MDB_envinfo info;
    mdb_env_info(m_env, &info);
    const uint64_t map_size = info.me_mapsize;
    Txn txn;
    int rc = txn.begin(m_env, flags);
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
    if (rc != 0 && !is_damage(rc)) {
      return fail(error(std::string(what) + ": cannot begin a transaction", rc));
    }
    Failure failure;
    if (rc == 0) {
      rc = body(txn.get(), failure);
      if (rc == 0 && (flags & MDB_RDONLY) == 0) {
        rc = txn.commit();
      }
    }
    txn.abort();  // before any resize or recovery below; a no-op after commit
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
    if (is_damage(rc)) {
      lock.unlock();
      recover(generation, what, rc);
      continue;  // on the empty cache now (or a miss, read-only)
    }
    return fail(error(what, rc));
  }
  return fail(std::string(what) + " in cache " + m_dir + ": the map size does not settle; giving up");
}

// Doubles the map unless another thread already grew it past `seen`. No transaction of this
// process may be open meanwhile (LMDB's rule for mdb_env_set_mapsize): the exclusive lock
// waits for them.
Expected<void, Failure> Env::grow_map(uint64_t seen) {
  std::unique_lock lock(m_resize_mutex);
  if (m_env == nullptr) {
    return {};
  }
  MDB_envinfo info;
  mdb_env_info(m_env, &info);
  if (info.me_mapsize > seen) {
    return {};
  }
  if (seen >= m_max_map_size) {
    return fail("cache " + m_dir + " is full: it needs more than " + std::to_string(m_max_map_size >> 20) +
                " MiB of map; point KERNELGEN_CACHE_DIR at another directory, or remove this one to start afresh");
  }
  const uint64_t next = std::min(std::max<uint64_t>(seen * 2, 1 << 20), m_max_map_size);
  int rc = mdb_env_set_mapsize(m_env, next);
  if (rc != 0) {
    return fail(error("cannot grow the map to " + std::to_string(next) + " bytes", rc));
  }
  return {};
}

// Another process wrote beyond our map: take the size it recorded, never shrinking ours.
Expected<void, Failure> Env::adopt_map_size() {
  std::unique_lock lock(m_resize_mutex);
  if (m_env == nullptr) {
    return {};
  }
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

void Env::recover(uint64_t seen, const std::string& what, int rc) {
  std::unique_lock guard(m_resize_mutex);
  if (m_generation != seen || m_env == nullptr) {
    return;  // another thread recovered already
  }
  ++m_generation;
  const std::string why = what + ": " + mdb_strerror(rc);
  close();
  auto lock = DirLock::take(m_dir);
  if (!lock) {
    warn("cache: " + m_dir + " is damaged (" + why + "); " + lock.error().message);
    return;
  }
  auto moved = move_aside(m_dir, *lock, &m_id);
  if (!moved) {
    warn("cache: " + m_dir + " is damaged (" + why + ") and cannot be moved aside: " + moved.error().message);
  } else if (!moved->empty()) {
    warn("cache: " + m_dir + " was damaged (" + why + "); moved it to " + *moved +
         (m_read_only ? "" : " and starting an empty cache"));
  }
  if (m_read_only) {
    return;  // every read is a miss from now on
  }
  auto opened = open_locked(*lock);
  if (!opened) {
    close();
    warn("cache: cannot open a new cache in " + m_dir + ": " + opened.error().message);
  }
}

Expected<void, Failure> Env::init_databases() {
  const std::string& dir = m_dir;
  const std::string want = format_string();
  const bool read_only = m_read_only;
  Failure failure;
  auto body = [&](MDB_txn* t) -> int {
    const unsigned create = read_only ? 0 : MDB_CREATE;
    MDB_dbi main_dbi;
    int rc = mdb_dbi_open(t, nullptr, 0, &main_dbi);
    if (rc != 0) {
      return rc;
    }
    // The names of kernelgen's record and blob databases in the main database: an environment
    // that has them is a kernelgen cache, so a `meta` database or `format` record missing or
    // unreadable beside them is damage (a flipped byte in the name or the node), moved aside
    // like any other, where a foreign environment is refused untouched.
    const auto ours = [&] {
      for (const char* name : {"ac", "cas"}) {
        MDB_val k = as_val(name);
        MDB_val v;
        if (mdb_get(t, main_dbi, &k, &v) != MDB_NOTFOUND) {
          return true;
        }
      }
      return false;
    };
    const auto damaged = [&](const std::string& what) {
      failure = {Failure::Kind::Timeout, "its " + what + " is missing or unreadable beside its kernel databases"};
      return kBodyFailed;
    };
    rc = mdb_dbi_open(t, "meta", create, &meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
      MDB_stat st;
      mdb_stat(t, main_dbi, &st);
      if (ours()) {
        return damaged("meta database");
      }
      if (rc == MDB_INCOMPATIBLE || st.ms_entries > 0) {
        failure = {Failure::Kind::Error,
                   "the LMDB environment in " + dir + " is not a kernelgen cache; use another cache directory"};
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
    rc = mdb_get(t, meta, &key, &val);
    if (rc == MDB_NOTFOUND && ours()) {
      return damaged("format record");
    }
    if (rc == MDB_NOTFOUND && !read_only) {
      MDB_stat st;
      mdb_stat(t, main_dbi, &st);
      if (st.ms_entries > 1) {  // anything besides the `meta` we just created
        failure = {Failure::Kind::Error,
                   "the LMDB environment in " + dir + " is not a kernelgen cache; use another cache directory"};
        return kBodyFailed;
      }
      MDB_val v = as_val(want);
      rc = mdb_put(t, meta, &key, &v, 0);
      if (rc != 0) {
        return rc;
      }
    } else if (rc == MDB_NOTFOUND) {
      failure = {Failure::Kind::Error, "the cache in " + dir + " has no format version; it is not a kernelgen cache"};
      return kBodyFailed;
    } else if (rc != 0) {
      return rc;
    } else if (as_view(val) != want && !all_digits(as_view(val))) {
      return damaged("format record");  // a format is a number: anything else is damage
    } else if (as_view(val) != want) {
      failure = {Failure::Kind::Error, "the cache in " + dir + " has format " + std::string(as_view(val)) +
                                           ", but kernelgen " + kVersion + " uses format " + want +
                                           "; set KERNELGEN_CACHE_DIR to another directory or remove " + dir};
      return kBodyFailed;
    }
    if ((rc = mdb_dbi_open(t, "ac", create, &ac)) != 0) {
      return rc;
    }
    return mdb_dbi_open(t, "cas", create, &cas);
  };
  int rc = 0;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    Txn txn;
    rc = txn.begin(m_env, read_only ? MDB_RDONLY : 0);
    if (rc == MDB_MAP_RESIZED) {
      // Another process grew the map since mdb_env_open: adopt its size. No transaction of this
      // environment is open (it is not shared yet).
      rc = mdb_env_set_mapsize(m_env, 0);
      if (rc != 0) {
        break;
      }
      continue;
    }
    if (rc == 0) {
      rc = body(txn.get());
    }
    // Database handles opened in a transaction survive it only when it commits: commit
    // read-only transactions too.
    if (rc == 0) {
      rc = txn.commit();
    }
    if (rc == MDB_MAP_FULL) {
      txn.abort();
      MDB_envinfo info;
      mdb_env_info(m_env, &info);
      rc = mdb_env_set_mapsize(m_env, std::min<uint64_t>(info.me_mapsize * 2, m_max_map_size));
      if (rc != 0 || info.me_mapsize >= m_max_map_size) {
        rc = rc != 0 ? rc : MDB_MAP_FULL;
        break;
      }
      continue;
    }
    break;
  }
  if (rc == 0) {
    return {};
  }
  if (rc == kBodyFailed) {
    return unexpected(std::move(failure));
  }
  if (is_damage(rc)) {
    return fail(std::string("LMDB cannot read it: ") + mdb_strerror(rc), Failure::Kind::Timeout);
  }
  return fail(error("cannot open the databases", rc));
}

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

// Returns the environment for `dir` with one more user counted, and its id for release_env().
Expected<std::pair<Env*, EnvId>, Failure> open_env(const std::string& dir, const LocalCache::Options& options) {
  struct stat st;
  if (options.read_only) {
    if (::stat(dir.c_str(), &st) != 0) {
      return fail("no kernelgen cache in " + dir + " (" + dir + ": " + std::strerror(errno) + ")",
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
  KG_TRY(check_private_dir(dir, st));
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
  auto env = std::make_unique<Env>(dir, options);
  KG_TRY(env->open());
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

}  // namespace

Expected<AcRecord, Failure> parse_record_json(const std::string& key, std::string_view text) {
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
    // Added within format 1: records written before the loop have none.
    if (auto it = j.find("history_digest"); it != j.end()) {
      r.history_digest = it->get<std::string>();
    }
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

struct LocalCache::Impl {
  Impl(Env* e, EnvId i) : env(e), id(i) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { release_env(id); }

  Env* env;
  EnvId id;
  bool read_only = false;
  std::function<void(const std::string&)> on_warning;
  std::function<int64_t()> now;

  int64_t now_unix() const { return now ? now() : static_cast<int64_t>(std::time(nullptr)); }

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
  // `dbi` names the database handle in Env (the handle is re-read inside each transaction: it
  // is replaced when a damaged cache is replaced by an empty one).
  Expected<std::string, Failure> get_raw(MDB_dbi Env::*dbi, const std::string& key, const char* what) {
    std::string out;
    bool found = false;
    KG_TRY(env->read(what, [&](MDB_txn* txn, Failure&) -> int {
      MDB_val k = as_val(key);
      MDB_val v;
      int rc = mdb_get(txn, env->*dbi, &k, &v);
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
  void evict_if(MDB_dbi Env::*dbi, const std::string& key, Pred&& still_bad) {
    auto done = env->write("cannot evict a corrupt entry", [&](MDB_txn* txn, Failure&) -> int {
      MDB_val k = as_val(key);
      MDB_val v;
      int rc = mdb_get(txn, env->*dbi, &k, &v);
      if (rc != 0) {
        return rc == MDB_NOTFOUND ? 0 : rc;
      }
      return still_bad(as_view(v)) ? mdb_del(txn, env->*dbi, &k, nullptr) : 0;
    });
    if (!done) {
      warn("cache: " + done.error().message);
    }
  }

  // Parses a record read under `key`; a corrupt one is logged, evicted and reported as NotFound.
  Expected<AcRecord, Failure> decode_record(const std::string& key, const std::string& bytes) {
    auto record = parse_record_json(key, bytes);
    if (record) {
      return record;
    }
    if (read_only) {
      warn("cache: record " + key + " is corrupt (" + record.error().message +
           "); not evicted (read-only cache)");
    } else {
      warn("cache: record " + key + " is corrupt (" + record.error().message + "); evicted");
      evict_if(&Env::ac, key, [&](std::string_view now) { return now == bytes; });
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
  impl->now = options.now;
  return LocalCache(std::move(impl), dir);
}

Expected<AcRecord, Failure> LocalCache::get_record(const std::string& key) {
  if (!is_digest(key)) {
    return fail("no record for " + key + ": not a key", Failure::Kind::NotFound);
  }
  auto bytes = m_impl->get_raw(&Env::ac, key, "cannot read record");
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
      {"history_digest", &record.history_digest},
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

Expected<void, Failure> LocalCache::put_entries(const std::vector<EntryToStore>& entries) {
  if (entries.empty()) {
    return {};
  }
  KG_TRY(m_impl->check_writable("store a cache entry"));
  // Everything is checked before the transaction: a bad entry costs no writer lock.
  std::vector<std::string> texts;
  texts.reserve(entries.size());
  for (const EntryToStore& e : entries) {
    const AcRecord& record = *e.record;
    if (!is_digest(record.key)) {
      return fail("cannot store a record under \"" + record.key + "\": not a key");
    }
    for (const std::string* digest : blob_digests(record)) {
      if (!is_digest(*digest)) {
        return fail("cannot store record " + record.key + ": \"" + *digest + "\" is not a digest");
      }
    }
    for (const BlobToStore& b : e.blobs) {
      if (!is_digest(b.digest) || xxh3_128_hex(b.content) != b.digest) {
        return fail("cannot store record " + record.key + ": the bytes given for blob \"" + b.digest +
                    "\" do not hash to it; nothing was stored");
      }
    }
    texts.push_back(to_json(record).dump());
  }
  Env& env = *m_impl->env;
  std::vector<std::string> replaced;
  KG_TRY(env.write("cannot store a cache entry", [&](MDB_txn* txn, Failure& failure) -> int {
    replaced.clear();
    for (const EntryToStore& e : entries) {
      for (const BlobToStore& b : e.blobs) {
        MDB_val k = as_val(b.digest);
        MDB_val v = as_val(b.content);
        int rc = mdb_put(txn, env.cas, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST && as_view(v) != b.content) {  // v now points at the stored bytes
          replaced.push_back(b.digest);
          v = as_val(b.content);
          rc = mdb_put(txn, env.cas, &k, &v, 0);
        }
        if (rc != 0 && rc != MDB_KEYEXIST) {
          return rc;
        }
      }
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      const AcRecord& record = *entries[i].record;
      for (const std::string* digest : blob_digests(record)) {
        MDB_val k = as_val(*digest);
        MDB_val v;
        int rc = mdb_get(txn, env.cas, &k, &v);
        if (rc == MDB_NOTFOUND) {
          failure = {Failure::Kind::Error, "cannot store record " + record.key + ": blob " + *digest +
                                               " is neither given nor in cache " + env.dir() +
                                               "; nothing was stored"};
          return kBodyFailed;
        }
        if (rc != 0) {
          return rc;
        }
      }
      MDB_val k = as_val(record.key);
      MDB_val v = as_val(texts[i]);
      if (int rc = mdb_put(txn, env.ac, &k, &v, 0); rc != 0) {
        return rc;
      }
    }
    return 0;
  }));
  for (const std::string& digest : replaced) {
    m_impl->warn("cache: blob " + digest + " failed its digest check; replaced");
  }
  return {};
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
    now_unix = m_impl->now_unix();
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
    auto record = parse_record_json(key, as_view(v));
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
  auto bytes = m_impl->get_raw(&Env::cas, digest, "cannot read blob");
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
    m_impl->evict_if(&Env::cas, digest,
                     [&](std::string_view now) { return xxh3_128_hex(now) != digest; });
  }
  return fail("blob " + digest + " in cache " + m_dir + " was corrupt", Failure::Kind::NotFound);
}

Expected<std::string, Failure> LocalCache::put_blob(const std::string& content) {
  KG_TRY(m_impl->check_writable("store a blob"));
  std::string digest = xxh3_128_hex(content);
  // Storing what is already there is common (identical headers, re-runs): check without taking
  // the writer lock first.
  auto existing = m_impl->get_raw(&Env::cas, digest, "cannot read blob");
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
    Cursor cursor;
    int rc = cursor.open(txn, env.ac);
    if (rc != 0) {
      return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) == 0) {
      raw.emplace_back(std::string(as_view(k)), std::string(as_view(v)));
    }
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

Expected<std::vector<std::pair<std::string, uint64_t>>, Failure> LocalCache::list_blob_sizes() {
  Env& env = *m_impl->env;
  std::vector<std::pair<std::string, uint64_t>> out;
  KG_TRY(env.read("cannot list blobs", [&](MDB_txn* txn, Failure&) -> int {
    out.clear();
    Cursor cursor;
    int rc = cursor.open(txn, env.cas);
    if (rc != 0) {
      return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) == 0) {
      out.emplace_back(std::string(as_view(k)), static_cast<uint64_t>(v.mv_size));
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
  }));
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
    Cursor cursor;
    if ((rc = cursor.open(txn, env.cas)) != 0) {
      return rc;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) == 0) {
      s.cas_bytes += v.mv_size;
    }
    if (rc != MDB_NOTFOUND) {
      return rc;
    }
    std::tie(s.map_size, s.used_bytes) = env.sizes();
    return 0;
  }));
  return s;
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
      {"history_digest", r.history_digest},
      {"verification", verification_name(r.verification)},
      {"created_unix", r.created_unix},
      {"last_access_unix", r.last_access_unix},
  };
}

std::string stored_record_text(const AcRecord& record) { return to_json(record).dump(); }

}  // namespace kg::cache

#include "cache/tier_stats.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "util/file.h"
#include "util/log.h"

namespace kg::cache {

namespace {

constexpr int k_format = 1;
constexpr const char* k_file = "stats.json";
constexpr const char* k_lock = "stats.lock";
constexpr off_t k_max_file_bytes = 1 << 20;  // 64 tiers take about 20 KB

// flock(LOCK_EX) on <dir>/stats.lock for as long as it lives.
class StatsLock {
 public:
  static Expected<StatsLock, Failure> take(const std::string& dir) {
    const std::string path = dir + "/" + k_lock;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      return fail(os_error("cannot open the statistics lock", path));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        std::string msg = os_error("cannot lock", path);
        ::close(fd);
        return fail(msg);
      }
    }
    return StatsLock(fd);
  }
  StatsLock(StatsLock&& o) noexcept : m_fd(o.m_fd) { o.m_fd = -1; }
  StatsLock(const StatsLock&) = delete;
  StatsLock& operator=(const StatsLock&) = delete;
  ~StatsLock() {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }

 private:
  explicit StatsLock(int fd) : m_fd(fd) {}
  int m_fd;
};

uint64_t counter(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The file's contents; anything unreadable or damaged is an empty file (with a debug line).
TierStatsFile read_locked(const std::string& dir) {
  const std::string path = dir + "/" + k_file;
  TierStatsFile out;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      KG_LOG_DEBUG(os_error("cannot open", path) << "; statistics start from zero");
    }
    return out;
  }
  struct stat st;
  std::string text;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_size > k_max_file_bytes) {
    KG_LOG_DEBUG(path << " is not a statistics file of this user (or is over 1 MiB); statistics start from zero");
    ::close(fd);
    return out;
  }
  text.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("format", 0) != k_format || !j.contains("tiers") || !j["tiers"].is_array()) {
    KG_LOG_DEBUG(path << " is damaged or of another format; statistics start from zero");
    return out;
  }
  if (auto it = j.find("since_unix"); it != j.end() && it->is_number_integer()) {
    out.since_unix = it->get<int64_t>();
  }
  for (const nlohmann::json& t : j["tiers"]) {
    if (!t.is_object() || !t.contains("tier") || !t["tier"].is_string() || out.tiers.size() >= kMaxTiersInStats) {
      continue;
    }
    TierCounters c;
    c.tier = t["tier"].get<std::string>().substr(0, 512);
    c.hits = counter(t, "hits");
    c.misses = counter(t, "misses");
    c.errors = counter(t, "errors");
    c.bytes_read = counter(t, "bytes_read");
    c.bytes_written = counter(t, "bytes_written");
    if (auto s = t.find("seconds"); s != t.end() && s->is_number() && s->get<double>() >= 0) {
      c.seconds = s->get<double>();
    }
    out.tiers.push_back(std::move(c));
  }
  return out;
}

// Replaces the file: a temporary file beside it, then rename (no fsync: see the header).
Expected<void, Failure> write_locked(const std::string& dir, const TierStatsFile& stats) {
  nlohmann::json tiers = nlohmann::json::array();
  for (const TierCounters& c : stats.tiers) {
    tiers.push_back({{"tier", c.tier},
                     {"hits", c.hits},
                     {"misses", c.misses},
                     {"errors", c.errors},
                     {"bytes_read", c.bytes_read},
                     {"bytes_written", c.bytes_written},
                     {"seconds", c.seconds}});
  }
  const std::string text =
      nlohmann::json{{"format", k_format}, {"since_unix", stats.since_unix}, {"tiers", tiers}}.dump() + "\n";
  const std::string path = dir + "/" + k_file;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover of a crashed process with this pid (we hold the lock)
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return fail(os_error("cannot create", tmp));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      std::string msg = os_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(msg);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = os_error("cannot replace", path);
    ::unlink(tmp.c_str());
    return fail(msg);
  }
  return {};
}

}  // namespace

bool TierCounters::empty() const {
  return hits == 0 && misses == 0 && errors == 0 && bytes_read == 0 && bytes_written == 0 && seconds == 0;
}

void TierCounters::add(const TierCounters& o) {
  hits += o.hits;
  misses += o.misses;
  errors += o.errors;
  bytes_read += o.bytes_read;
  bytes_written += o.bytes_written;
  seconds += o.seconds;
}

Expected<TierStatsFile, Failure> read_tier_stats(const std::string& dir) {
  // No lock: the file is only ever replaced whole (rename), so a reader sees one version of it.
  return read_locked(dir);
}

Expected<void, Failure> add_tier_stats(const std::string& dir, const std::vector<TierCounters>& counted,
                                       int64_t now_unix) {
  if (std::all_of(counted.begin(), counted.end(), [](const TierCounters& c) { return c.empty(); })) {
    return {};
  }
  auto lock = StatsLock::take(dir);
  if (!lock) {
    return unexpected(lock.error());
  }
  TierStatsFile stats = read_locked(dir);
  if (stats.since_unix == 0) {
    stats.since_unix = now_unix;
  }
  for (const TierCounters& c : counted) {
    if (c.empty()) {
      continue;
    }
    auto it = std::find_if(stats.tiers.begin(), stats.tiers.end(),
                           [&](const TierCounters& t) { return t.tier == c.tier; });
    TierCounters sum;
    sum.tier = c.tier;
    if (it != stats.tiers.end()) {
      sum = *it;
      stats.tiers.erase(it);
    }
    sum.add(c);
    stats.tiers.push_back(std::move(sum));  // the most recently counted last
  }
  if (stats.tiers.size() > kMaxTiersInStats) {
    stats.tiers.erase(stats.tiers.begin(), stats.tiers.end() - kMaxTiersInStats);
  }
  return write_locked(dir, stats);
}

Expected<void, Failure> zero_tier_stats(const std::string& dir, int64_t now_unix) {
  auto lock = StatsLock::take(dir);
  if (!lock) {
    return unexpected(lock.error());
  }
  TierStatsFile empty;
  empty.since_unix = now_unix;
  return write_locked(dir, empty);
}

}  // namespace kg::cache

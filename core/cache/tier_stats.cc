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
constexpr off_t k_max_file_bytes = 1 << 20;  // 64 tiers take about 20 KB

// An open stats.json with flock held (shared or exclusive) until it is destroyed.
class StatsFile {
 public:
  // For reading: NotFound when there is no file (or it is not a regular file of this user).
  static Expected<StatsFile, Failure> open_for_reading(const std::string& dir) {
    const std::string path = dir + "/" + k_file;
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return fail(os_error("cannot open", path), Failure::Kind::NotFound);
    }
    StatsFile f(fd, path);
    KG_TRY(f.lock(LOCK_SH));
    if (!f.ours()) {
      return fail(path + " is not a statistics file of this user", Failure::Kind::NotFound);
    }
    return f;
  }

  // For updating, created when missing. Anything else under the name (a symbolic link, a hard
  // link, another user's file) is removed first and a new file made: it is never written through.
  static Expected<StatsFile, Failure> open_for_update(const std::string& dir) {
    const std::string path = dir + "/" + k_file;
    for (int attempt = 0; attempt < 2; ++attempt) {
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 && errno != ELOOP) {
        return fail(os_error("cannot open", path));
      }
      if (fd >= 0) {
        StatsFile f(fd, path);
        KG_TRY(f.lock(LOCK_EX));
        if (f.ours()) {
          return f;
        }
      }
      KG_LOG_DEBUG(path << " is not a statistics file of this user; replacing it");
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return fail(os_error("cannot remove", path));
      }
    }
    return fail("cannot make " + path + ": something else keeps appearing under its name");
  }

  StatsFile(StatsFile&& o) noexcept : m_fd(o.m_fd), m_path(std::move(o.m_path)) { o.m_fd = -1; }
  StatsFile(const StatsFile&) = delete;
  StatsFile& operator=(const StatsFile&) = delete;
  ~StatsFile() {
    if (m_fd >= 0) {
      ::close(m_fd);  // releases the lock
    }
  }

  // The contents; anything unreadable or damaged reads as no counters (with a debug line).
  TierStatsFile read() const {
    TierStatsFile out;
    struct stat st;
    if (::fstat(m_fd, &st) != 0 || st.st_size > k_max_file_bytes) {
      KG_LOG_DEBUG(m_path << " is over 1 MiB or cannot be read; statistics start from zero");
      return out;
    }
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::pread(m_fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;
      }
      got += static_cast<size_t>(n);
    }
    text.resize(got);
    if (text.empty()) {
      return out;  // just created
    }
    return parse(text);
  }

  // Replaces the contents: one pwrite from offset 0, then the length cut to it. In place, not a
  // temporary file and rename: on ext4 a rename over a file costs about 0.5 ms (measured), most
  // of this update's cost on a cache hit. No fsync (see the header).
  Expected<void, Failure> write(const TierStatsFile& stats) const {
    const std::string text = serialise(stats);
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::pwrite(m_fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return fail(os_error("cannot write", m_path));
      }
      done += static_cast<size_t>(n);
    }
    if (::ftruncate(m_fd, static_cast<off_t>(text.size())) != 0) {
      return fail(os_error("cannot write", m_path));
    }
    return {};
  }

 private:
  StatsFile(int fd, std::string path) : m_fd(fd), m_path(std::move(path)) {}

  Expected<void, Failure> lock(int how) const {
    while (::flock(m_fd, how) != 0) {
      if (errno != EINTR) {
        return fail(os_error("cannot lock", m_path));
      }
    }
    return {};
  }

  // A regular file of this user with one name.
  bool ours() const {
    struct stat st;
    return ::fstat(m_fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && st.st_nlink == 1;
  }

  static uint64_t counter(const nlohmann::json& j, const char* name) {
    auto it = j.find(name);
    return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
  }

  TierStatsFile parse(const std::string& text) const {
    TierStatsFile out;
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("format") || j["format"] != k_format || !j.contains("tiers") ||
        !j["tiers"].is_array()) {
      KG_LOG_DEBUG(m_path << " is damaged or of another format; statistics start from zero");
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

  static std::string serialise(const TierStatsFile& stats) {
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
    return nlohmann::json{{"format", k_format}, {"since_unix", stats.since_unix}, {"tiers", tiers}}.dump() + "\n";
  }

  int m_fd;
  std::string m_path;
};

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
  auto file = StatsFile::open_for_reading(dir);
  if (!file) {
    return TierStatsFile{};
  }
  return file->read();
}

Expected<void, Failure> add_tier_stats(const std::string& dir, const std::vector<TierCounters>& counted,
                                       int64_t now_unix) {
  if (std::all_of(counted.begin(), counted.end(), [](const TierCounters& c) { return c.empty(); })) {
    return {};
  }
  auto file = StatsFile::open_for_update(dir);
  if (!file) {
    return unexpected(file.error());
  }
  TierStatsFile stats = file->read();
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
  return file->write(stats);
}

Expected<void, Failure> zero_tier_stats(const std::string& dir, int64_t now_unix) {
  auto file = StatsFile::open_for_update(dir);
  if (!file) {
    return unexpected(file.error());
  }
  TierStatsFile empty;
  empty.since_unix = now_unix;
  return file->write(empty);
}

}  // namespace kg::cache

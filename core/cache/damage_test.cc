// The local cache against damaged files, hostile directories and failed writes.
#include <fcntl.h>
#include <lmdb.h>
#include <gtest/gtest.h>

#include "raw_lmdb.h"
#include "temp_dir.h"
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "cache/local_cache.h"
#include "cache/validate.h"
#include "util/file.h"
#include "util/hash.h"

namespace kg::cache {
namespace {

namespace fs = std::filesystem;

using TempDir = ::kg::testing::TempDir;

LocalCache::Options quiet(std::vector<std::string>* warnings, bool read_only = false) {
  LocalCache::Options o;
  o.read_only = read_only;
  o.on_warning = [warnings](const std::string& line) { warnings->push_back(line); };
  return o;
}

std::string blob_of(int i) {
  std::string s = "// blob " + std::to_string(i) + "\n";
  const size_t size = i % 5 == 0 ? 9000 : 200 + 31 * i;  // some span overflow pages
  while (s.size() < size) {
    s += "__device__ int v" + std::to_string(i) + ";\n";
  }
  return s;
}

AcRecord record_of(int i, const std::string& digest) {
  AcRecord r;
  r.key = xxh3_128_hex("damage-key-" + std::to_string(i));
  r.name = "k" + std::to_string(i);
  r.arch = "sm_90a";
  r.generator = "test";
  r.source_digest = digest;
  r.header_digest = digest;
  r.verification = Verification::Unverified;
  return r;
}

// A cache in `dir` with `n` records, each with its own blob.
void populate(const std::string& dir, int n) {
  auto cache = LocalCache::open(dir);
  ASSERT_TRUE(cache) << cache.error().message;
  for (int i = 0; i < n; ++i) {
    auto d = cache->put_blob(blob_of(i));
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_TRUE(cache->put_record(record_of(i, *d)));
  }
}

void patch(const std::string& path, uint64_t offset, const void* bytes, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
}

uint64_t file_size(const std::string& path) { return fs::file_size(path); }

// Reads everything through `cache`; fails the test when a blob comes back with other bytes.
void read_all(LocalCache& cache, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string want = blob_of(i);
    auto r = cache.get_record(record_of(i, "").key);
    if (r) {
      auto b = cache.get_blob(r->source_digest);
      if (b) {
        EXPECT_EQ(*b, want) << "blob " << i << " served with other bytes";
      }
    }
  }
  (void)cache.list_records();
  (void)cache.stats();
}

std::vector<std::string> aside_dirs(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("corrupt-", 0) == 0) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

TEST(CacheDamage, BadMetaPageIsMovedAsideWithOneWarning) {
  TempDir tmp;
  populate(tmp.path(), 5);
  // Point the main database's root of both meta pages far past the end of the file: LMDB
  // would read outside its map.
  const uint64_t root = 1u << 30;
  patch(tmp.path() + "/data.mdb", 0x80, &root, sizeof root);
  patch(tmp.path() + "/data.mdb", 4096 + 0x80, &root, sizeof root);

  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  const auto moved = aside_dirs(tmp.path());
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_NE(warnings[0].find("was damaged"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("root page"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("moved it to " + moved[0]), std::string::npos) << warnings[0];
  EXPECT_TRUE(fs::exists(moved[0] + "/data.mdb"));
  // An empty cache now: a miss, and it takes writes.
  auto miss = cache->get_record(record_of(1, "").key);
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);
  auto d = cache->put_blob(blob_of(1));
  ASSERT_TRUE(d);
  ASSERT_TRUE(cache->put_record(record_of(1, *d)));
  EXPECT_EQ(warnings.size(), 1u);
}

// Runs `edit` on the `meta` database of the cache in `dir`, behind LocalCache's back.
void edit_meta(const std::string& dir, const std::function<void(MDB_txn*, MDB_dbi)>& edit) {
  ::kg::testing::raw_lmdb_write(dir, "meta", /*create=*/false, edit);
}

// What a flipped byte in the `meta` database's name, or in its `format` record's key or value,
// leaves behind: a kernelgen cache (its `ac` and `cas` databases are there) without a readable
// format. That is damage, moved aside with one warning, not a foreign environment to refuse.
TEST(CacheDamage, LostFormatBesideTheKernelDatabasesIsDamage) {
  const std::vector<std::pair<const char*, std::function<void(MDB_txn*, MDB_dbi)>>> damages = {
      // (A writer creates `meta` afresh when it is gone, and then finds no format in it.)
      {"format record", [](MDB_txn* t, MDB_dbi meta) { ASSERT_EQ(mdb_drop(t, meta, 1), 0); }},
      {"format record",
       [](MDB_txn* t, MDB_dbi meta) {
         MDB_val k{6, const_cast<char*>("format")};
         ASSERT_EQ(mdb_del(t, meta, &k, nullptr), 0);
       }},
      {"format record",
       [](MDB_txn* t, MDB_dbi meta) {
         MDB_val k{6, const_cast<char*>("format")};
         MDB_val v{2, const_cast<char*>("\x01q")};
         ASSERT_EQ(mdb_put(t, meta, &k, &v, 0), 0);
       }},
  };
  for (const auto& [what, damage] : damages) {
    SCOPED_TRACE(what);
    TempDir tmp;
    populate(tmp.path(), 3);
    edit_meta(tmp.path(), damage);
    std::vector<std::string> warnings;
    auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
    ASSERT_TRUE(cache) << cache.error().message;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("was damaged"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find(std::string("its ") + what + " is missing or unreadable"), std::string::npos)
        << warnings[0];
    EXPECT_EQ(aside_dirs(tmp.path()).size(), 1u);
    auto miss = cache->get_record(record_of(1, "").key);
    ASSERT_FALSE(miss);
    EXPECT_EQ(miss.error().kind, Failure::Kind::NotFound);
    auto d = cache->put_blob(blob_of(1));
    ASSERT_TRUE(d) << d.error().message;  // an empty cache that takes writes
  }
  // A reader finds the `meta` database itself gone: a miss, the cache moved aside.
  TempDir tmp;
  populate(tmp.path(), 3);
  edit_meta(tmp.path(), [](MDB_txn* t, MDB_dbi meta) { ASSERT_EQ(mdb_drop(t, meta, 1), 0); });
  std::vector<std::string> warnings;
  auto ro = LocalCache::open(tmp.path(), quiet(&warnings, /*read_only=*/true));
  ASSERT_FALSE(ro);
  EXPECT_EQ(ro.error().kind, Failure::Kind::NotFound) << ro.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("its meta database is missing or unreadable"), std::string::npos) << warnings[0];
  EXPECT_EQ(aside_dirs(tmp.path()).size(), 1u);
}

TEST(CacheDamage, ReadOnlyOpenOfDamagedCacheIsAMiss) {
  TempDir tmp;
  populate(tmp.path(), 3);
  const uint16_t flags = 0;  // meta page 1 no longer says it is one
  patch(tmp.path() + "/data.mdb", 4096 + 10, &flags, sizeof flags);
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings, /*read_only=*/true));
  ASSERT_FALSE(cache);
  EXPECT_EQ(cache.error().kind, Failure::Kind::NotFound) << cache.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("meta page 1"), std::string::npos) << warnings[0];
  EXPECT_EQ(aside_dirs(tmp.path()).size(), 1u);
  // The next writer starts an empty cache without another warning.
  auto rw = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(rw) << rw.error().message;
  EXPECT_EQ(warnings.size(), 1u);
}

TEST(CacheDamage, TruncatedDataFileIsMovedAside) {
  TempDir tmp;
  populate(tmp.path(), 20);
  const std::string data = tmp.path() + "/data.mdb";
  ASSERT_EQ(::truncate(data.c_str(), static_cast<off_t>(file_size(data) / 2)), 0);
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("was damaged"), std::string::npos) << warnings[0];
  read_all(*cache, 20);
  EXPECT_EQ(cache->stats()->ac_entries, 0u);
}

TEST(CacheDamage, IncompleteDataFileFromAFailedCreationIsReplacedQuietly) {
  TempDir tmp;
  populate(tmp.path(), 1);
  // What a creation cut short by a full disk leaves: the first meta page only.
  const std::string data = tmp.path() + "/data.mdb";
  ASSERT_EQ(::truncate(data.c_str(), 4096), 0);
  ::unlink((tmp.path() + "/lock.mdb").c_str());
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  EXPECT_TRUE(warnings.empty());
  auto d = cache->put_blob(blob_of(2));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(*cache->get_blob(*d), blob_of(2));
}

// Every page of a populated file, its header overwritten in several ways: opening and reading
// the cache never crashes and never returns other bytes than were stored.
TEST(CacheDamage, DamagedPageHeadersAreCaughtOrHarmless) {
  TempDir tmp;
  const std::string pristine = tmp.path() + "/pristine";
  ASSERT_EQ(::mkdir(pristine.c_str(), 0700), 0);
  populate(pristine, 40);
  const uint64_t pages = file_size(pristine + "/data.mdb") / 4096;
  const std::string trial = tmp.path() + "/trial";
  int damaged = 0;
  const uint16_t values[] = {0, 0xffff};
  for (uint64_t page = 2; page < pages; ++page) {
    for (size_t field : {0u, 10u, 12u, 14u}) {  // page number (low bytes), flags, lower, upper
      for (uint16_t v : values) {
        fs::remove_all(trial);
        ASSERT_EQ(::mkdir(trial.c_str(), 0700), 0);
        fs::copy_file(pristine + "/data.mdb", trial + "/data.mdb");
        patch(trial + "/data.mdb", page * 4096 + field, &v, sizeof v);
        std::vector<std::string> warnings;
        auto cache = LocalCache::open(trial, quiet(&warnings));
        ASSERT_TRUE(cache) << cache.error().message;
        read_all(*cache, 40);
        damaged += warnings.empty() ? 0 : 1;
      }
    }
  }
  EXPECT_GT(damaged, 0);
}

TEST(CacheDamage, LockFileWithImpossibleReaderCountIsMovedAside) {
  TempDir tmp;
  populate(tmp.path(), 2);
  // Initialise lock.mdb's header (a reader does), then claim a million readers.
  { ASSERT_TRUE(LocalCache::open(tmp.path(), true)); }
  const uint32_t readers = 1000000;
  patch(tmp.path() + "/lock.mdb", 0x38, &readers, sizeof readers);
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("lock.mdb"), std::string::npos) << warnings[0];
}

// A file that passed the full check is stamped; a later change to it (which moves its times)
// brings the full check back, which finds damage in pages the meta-page check does not read.
TEST(CacheDamage, ChangedFileIsCheckedInFullAgain) {
  TempDir tmp;
  populate(tmp.path(), 30);
  { ASSERT_TRUE(LocalCache::open(tmp.path(), true)); }
  ASSERT_TRUE(fs::exists(tmp.path() + "/checked"));
  const std::string data = tmp.path() + "/data.mdb";
  const uint64_t pages = file_size(data) / 4096;
  const uint16_t lower = 0xffff;
  for (uint64_t page = 2; page < pages; ++page) {
    patch(data, page * 4096 + 12, &lower, sizeof lower);
  }
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache) << cache.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("was damaged"), std::string::npos) << warnings[0];
}

// The root page number of the named database `name`, read from the file as LMDB would.
uint64_t root_of(const std::string& data, const std::string& name) {
  std::string bytes = *read_file(data);
  auto u64 = [&](size_t off) {
    uint64_t v;
    std::memcpy(&v, bytes.data() + off, sizeof v);
    return v;
  };
  auto u16 = [&](size_t off) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + off, sizeof v);
    return v;
  };
  const size_t meta = u64(0x90) >= u64(4096 + 0x90) ? 0 : 4096;
  const uint64_t main_root = u64(meta + 0x80);
  const size_t page = main_root * 4096;
  const size_t keys = (u16(page + 12) - 16) / 2;
  for (size_t i = 0; i < keys; ++i) {
    const size_t node = page + u16(page + 16 + 2 * i);
    const size_t ksize = u16(node + 6);
    if (bytes.compare(node + 8, ksize, name) == 0) {
      return u64(node + 8 + ksize + 40);
    }
  }
  return 0;
}

// Damage that appears while the cache is open: LMDB reports it (here MDB_CORRUPTED, a page of
// the wrong type), the files are moved aside once, and the cache carries on empty.
TEST(CacheDamage, DamageFoundByLmdbLaterIsMovedAsideAndTheCacheCarriesOn) {
  TempDir tmp;
  populate(tmp.path(), 10);
  std::vector<std::string> warnings;
  auto cache = LocalCache::open(tmp.path(), quiet(&warnings));
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->get_record(record_of(3, "").key));
  const std::string data = tmp.path() + "/data.mdb";
  const uint64_t root = root_of(data, "ac");
  ASSERT_GE(root, 2u);
  const uint16_t overflow = 0x04;
  patch(data, root * 4096 + 10, &overflow, sizeof overflow);

  auto got = cache->get_record(record_of(3, "").key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound) << got.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("was damaged"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("MDB_CORRUPTED"), std::string::npos) << warnings[0];
  EXPECT_EQ(aside_dirs(tmp.path()).size(), 1u);
  // The cache works on, for this handle and for the next process.
  auto d = cache->put_blob(blob_of(3));
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE(cache->put_record(record_of(3, *d)));
  ASSERT_TRUE(cache->get_record(record_of(3, "").key));
  EXPECT_EQ(warnings.size(), 1u);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto other = LocalCache::open(tmp.path(), true);
    ::_exit(other && other->get_record(record_of(3, "").key) && !other->get_record(record_of(4, "").key) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Opening while another process commits all the time: the check may read pages the writer is
// reusing, which must never be taken for damage.
TEST(CacheDamage, OpensDuringConstantCommitsFindNoDamage) {
  TempDir tmp;
  populate(tmp.path(), 600);  // a check that takes long enough for commits to overlap it
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t writer = ::fork();
  if (writer == 0) {
    ::alarm(120);
    ::close(ready[0]);
    auto cache = LocalCache::open(tmp.path());
    if (!cache) {
      ::_exit(1);
    }
    (void)::write(ready[1], "x", 1);
    for (int i = 0;; ++i) {  // until killed
      auto d = cache->put_blob(blob_of(100 + i % 50) + std::to_string(i));
      if (!d || !cache->put_record(record_of(100 + i % 50, *d)) || !cache->remove_blob(*d)) {
        ::_exit(2);
      }
    }
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  std::vector<std::string> warnings;
  for (int i = 0; i < 200 && warnings.empty(); ++i) {
    auto cache = LocalCache::open(tmp.path(), quiet(&warnings, /*read_only=*/true));
    ASSERT_TRUE(cache) << cache.error().message << (warnings.empty() ? "" : "; warning: " + warnings[0]);
    EXPECT_TRUE(cache->get_record(record_of(7, "").key));
    // A fresh stamp would skip the walk next time; take it away to walk every time.
    ::unlink((tmp.path() + "/checked").c_str());
  }
  ::kill(writer, SIGKILL);
  int status = 0;
  ::waitpid(writer, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the writer stopped early, exit " << WEXITSTATUS(status);
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_TRUE(aside_dirs(tmp.path()).empty());
}

// ---- hostile directories ------------------------------------------------------------------

TEST(CacheDamage, DirectoryWritableByOthersIsRefused) {
  TempDir tmp;
  populate(tmp.path(), 1);
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0707), 0);
  for (bool read_only : {false, true}) {
    auto cache = LocalCache::open(tmp.path(), read_only);
    ASSERT_FALSE(cache);
    EXPECT_EQ(cache.error().kind, Failure::Kind::Error);
    EXPECT_NE(cache.error().message.find("refusing to use the kernel cache directory " + tmp.path()),
              std::string::npos)
        << cache.error().message;
    EXPECT_NE(cache.error().message.find("writable by group or others"), std::string::npos);
  }
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0700), 0);
  EXPECT_TRUE(LocalCache::open(tmp.path()));
}

TEST(CacheDamage, FilesOfAnotherOwnerAreRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to chown";
  }
  TempDir tmp;
  populate(tmp.path(), 1);
  ASSERT_EQ(::chown(tmp.path().c_str(), 65534, 65534), 0);
  auto cache = LocalCache::open(tmp.path(), true);
  ASSERT_FALSE(cache);
  EXPECT_NE(cache.error().message.find("owned by uid 65534"), std::string::npos) << cache.error().message;
  ASSERT_EQ(::chown(tmp.path().c_str(), 0, 0), 0);

  for (const char* name : {"data.mdb", "lock.mdb"}) {
    const std::string path = tmp.path() + "/" + name;
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    auto c = LocalCache::open(tmp.path());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find(std::string(name) + " is owned by uid 65534"), std::string::npos)
        << c.error().message;
    ASSERT_EQ(::chown(path.c_str(), 0, 0), 0);
  }
  EXPECT_TRUE(LocalCache::open(tmp.path()));
}

TEST(CacheDamage, SymlinkedOrHardLinkedFilesAreRefusedAndTheirTargetsUntouched) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/cache";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  populate(dir, 1);
  const std::string victim = tmp.path() + "/victim";
  std::ofstream(victim) << "precious";
  for (const char* name : {"lock.mdb", "data.mdb"}) {
    const std::string path = dir + "/" + name;
    const std::string saved = path + ".saved";
    ASSERT_EQ(::rename(path.c_str(), saved.c_str()), 0);
    ASSERT_EQ(::symlink(victim.c_str(), path.c_str()), 0);
    for (bool read_only : {false, true}) {
      auto c = LocalCache::open(dir, read_only);
      ASSERT_FALSE(c);
      EXPECT_NE(c.error().message.find(std::string(name) + " is a symbolic link"), std::string::npos)
          << c.error().message;
    }
    ASSERT_EQ(::unlink(path.c_str()), 0);
    ASSERT_EQ(::link(victim.c_str(), path.c_str()), 0);
    auto c = LocalCache::open(dir);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("hard links"), std::string::npos) << c.error().message;
    ASSERT_EQ(::unlink(path.c_str()), 0);
    ASSERT_EQ(::rename(saved.c_str(), path.c_str()), 0);
  }
  EXPECT_EQ(*read_file(victim), "precious");
  EXPECT_TRUE(LocalCache::open(dir));
}

// ---- failed writes release the write lock -------------------------------------------------

TEST(CacheDamage, FailedWritesLeaveNoWriteTransactionOpen) {
  TempDir tmp;
  LocalCache::Options options;
  options.initial_map_size = 64 << 10;
  options.max_map_size = 256 << 10;
  auto cache = LocalCache::open(tmp.path(), options);
  ASSERT_TRUE(cache);
  // The map-full path: growth stops at the cap.
  Expected<std::string, Failure> last = std::string();
  for (int i = 0; i < 40 && last; ++i) {
    last = cache->put_blob(std::string(20000, static_cast<char>('a' + i % 26)) + std::to_string(i));
  }
  ASSERT_FALSE(last);
  EXPECT_NE(last.error().message.find("is full"), std::string::npos) << last.error().message;
  // A record whose blob is missing.
  auto put = cache->put_record(record_of(1, xxh3_128_hex("not stored")));
  ASSERT_FALSE(put);
  EXPECT_NE(put.error().message.find("store blobs first"), std::string::npos) << put.error().message;

  // Another process can take the write lock at once (it would block forever otherwise: the
  // alarm turns that into a failure).
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(60);
    auto other = LocalCache::open(tmp.path());
    if (!other) {
      ::_exit(1);
    }
    auto d = other->put_blob("small");
    ::_exit(d ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // And this process too.
  EXPECT_TRUE(cache->put_blob("tiny"));
}

// ---- the data file check on its own ---------------------------------------------------------

TEST(CacheDamage, CheckReportsSoundEmptyAndIncomplete) {
  TempDir tmp;
  populate(tmp.path(), 30);
  const std::string data = tmp.path() + "/data.mdb";
  int fd = ::open(data.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto check = check_data_file(fd, data);
  ::close(fd);
  ASSERT_TRUE(check) << check.error().message;
  EXPECT_EQ(check->verdict, DataFileCheck::Verdict::Sound) << check->why;
  EXPECT_EQ(check->page_size, 4096u);
  EXPECT_GT(check->pages_read, 2u);

  const std::string empty = tmp.path() + "/empty";
  std::ofstream(empty).flush();
  fd = ::open(empty.c_str(), O_RDONLY);
  EXPECT_EQ(check_data_file(fd, empty)->verdict, DataFileCheck::Verdict::Empty);
  ::close(fd);

  ASSERT_EQ(::truncate(data.c_str(), 5000), 0);
  fd = ::open(data.c_str(), O_RDONLY);
  EXPECT_EQ(check_data_file(fd, data)->verdict, DataFileCheck::Verdict::Incomplete);
  ::close(fd);
}

}  // namespace
}  // namespace kg::cache

#include "cache/validate.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

#include "util/file.h"

namespace kg::cache {

namespace {

// LMDB 0.9 on-disk format (mdb.c): what the checks below read. Little-endian 64-bit layout, as
// LMDB writes it on the platforms kernelgen supports.
constexpr uint32_t kMagic = 0xBEEFC0DE;
constexpr uint32_t kDataVersion = 1;
constexpr uint64_t kInvalidPage = ~uint64_t{0};
constexpr size_t kPageHeader = 16;  // pgno u64, pad u16, flags u16, lower u16, upper u16 (or pages u32)
constexpr uint16_t kBranch = 0x01, kLeaf = 0x02, kOverflow = 0x04, kMeta = 0x08;
constexpr uint16_t kBigData = 0x01, kSubData = 0x02;  // leaf node flags (F_DUPDATA 0x04 never used)
constexpr uint16_t kIntegerKey = 0x08;                 // the free-page database's flags
constexpr size_t kNodeHeader = 8;                      // lo u16, hi u16, flags u16, ksize u16
constexpr size_t kDbRecord = 48;                       // MDB_db
constexpr size_t kMaxKeySize = 511;
constexpr int kMaxDepth = 32;  // LMDB's cursor stack
// Meta page fields, from the start of the page.
constexpr size_t kMetaMagic = 16, kMetaVersion = 20, kMetaAddress = 24, kMetaMapSize = 32,
                 kMetaFreeDb = 40, kMetaMainDb = 88, kMetaLastPage = 136, kMetaTxnid = 144,
                 kMetaEnd = 152;
// MDB_db fields.
constexpr size_t kDbPad = 0, kDbFlags = 4, kDbDepth = 6, kDbBranch = 8, kDbLeaf = 16, kDbOverflow = 24,
                 kDbEntries = 32, kDbRoot = 40;

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct DbRecord {
  uint32_t pad = 0;
  uint16_t flags = 0;
  uint16_t depth = 0;
  uint64_t branch = 0, leaf = 0, overflow = 0, entries = 0, root = 0;
};

DbRecord parse_db(const unsigned char* p) {
  DbRecord d;
  d.pad = load<uint32_t>(p + kDbPad);
  d.flags = load<uint16_t>(p + kDbFlags);
  d.depth = load<uint16_t>(p + kDbDepth);
  d.branch = load<uint64_t>(p + kDbBranch);
  d.leaf = load<uint64_t>(p + kDbLeaf);
  d.overflow = load<uint64_t>(p + kDbOverflow);
  d.entries = load<uint64_t>(p + kDbEntries);
  d.root = load<uint64_t>(p + kDbRoot);
  return d;
}

struct Meta {
  uint32_t magic = 0, version = 0;
  uint64_t address = 0, map_size = 0, last_page = 0, txnid = 0;
  uint16_t page_flags = 0;
  uint64_t page_no = 0;
  DbRecord free_db, main_db;
};

Meta parse_meta(const unsigned char* p) {
  Meta m;
  m.page_no = load<uint64_t>(p);
  m.page_flags = load<uint16_t>(p + 10);
  m.magic = load<uint32_t>(p + kMetaMagic);
  m.version = load<uint32_t>(p + kMetaVersion);
  m.address = load<uint64_t>(p + kMetaAddress);
  m.map_size = load<uint64_t>(p + kMetaMapSize);
  m.free_db = parse_db(p + kMetaFreeDb);
  m.main_db = parse_db(p + kMetaMainDb);
  m.last_page = load<uint64_t>(p + kMetaLastPage);
  m.txnid = load<uint64_t>(p + kMetaTxnid);
  return m;
}

// Reads exactly `n` bytes at `off`; returns the count read (short at the end of the file), or -1
// with errno set.
ssize_t pread_full(int fd, void* buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, static_cast<char*>(buf) + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -1;
    }
    if (r == 0) {
      break;
    }
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

// Thrown inside the walk to stop at the first problem; never leaves this file.
struct Damage {
  std::string why;
};
struct ReadError {
  std::string message;
};

class Walker {
 public:
  Walker(int fd, const std::string& path, uint64_t page_size, uint64_t last_page)
      : m_fd(fd), m_path(path), m_psize(page_size), m_last(last_page), m_used(last_page + 1, false) {
    m_used[0] = m_used[1] = true;  // meta pages
  }

  uint64_t pages_read() const { return m_pages_read; }

  // Walks the tree of `db`. `name` names it in messages; `free_list`: the free-page database
  // (integer keys, page lists as values); `main`: the main database (sub-database records).
  void walk_db(const DbRecord& db, const std::string& name, bool free_list, bool main) {
    Counts counts;
    if (db.root == kInvalidPage) {
      if (db.depth != 0 || db.entries != 0 || db.branch != 0 || db.leaf != 0 || db.overflow != 0) {
        damage(name + ": an empty database with depth " + std::to_string(db.depth) + " and " +
               std::to_string(db.entries) + " entries");
      }
      return;
    }
    if (db.depth == 0 || db.depth > kMaxDepth) {
      damage(name + ": depth " + std::to_string(db.depth));
    }
    Context ctx{name, free_list, main, db.depth};
    walk_page(ctx, db.root, 1, std::string_view(), false, std::string_view(), false, counts);
    if (counts.branch != db.branch || counts.leaf != db.leaf || counts.overflow != db.overflow ||
        counts.entries != db.entries) {
      damage(name + ": its record counts " + std::to_string(db.branch) + "/" + std::to_string(db.leaf) + "/" +
             std::to_string(db.overflow) + " branch/leaf/overflow pages and " + std::to_string(db.entries) +
             " entries, the tree has " + std::to_string(counts.branch) + "/" + std::to_string(counts.leaf) +
             "/" + std::to_string(counts.overflow) + " and " + std::to_string(counts.entries));
    }
  }

  [[noreturn]] void damage(const std::string& why) const { throw Damage{why}; }

 private:
  struct Counts {
    uint64_t branch = 0, leaf = 0, overflow = 0, entries = 0;
  };
  struct Context {
    std::string name;
    bool free_list;
    bool main;
    int depth;
  };

  void read_page(uint64_t pgno, std::vector<unsigned char>& buf, size_t n) {
    buf.resize(n);
    ssize_t got = pread_full(m_fd, buf.data(), n, pgno * m_psize);
    if (got < 0) {
      throw ReadError{os_error("cannot read", m_path)};
    }
    if (static_cast<size_t>(got) != n) {
      damage("page " + std::to_string(pgno) + " lies past the end of the file");
    }
    ++m_pages_read;
  }

  void claim(uint64_t pgno, const Context& ctx, const char* what) {
    if (pgno < 2 || pgno > m_last) {
      damage(ctx.name + ": " + what + " page number " + std::to_string(pgno) + " outside pages 2.." +
             std::to_string(m_last));
    }
    if (m_used[pgno]) {
      damage(ctx.name + ": page " + std::to_string(pgno) + " is used twice");
    }
    m_used[pgno] = true;
  }

  // Keys compare as LMDB's default (memcmp, then length) or, for the free list, as integers.
  static int compare(const Context& ctx, std::string_view a, std::string_view b) {
    if (ctx.free_list) {
      uint64_t x = load<uint64_t>(reinterpret_cast<const unsigned char*>(a.data()));
      uint64_t y = load<uint64_t>(reinterpret_cast<const unsigned char*>(b.data()));
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.compare(b);
  }

  void walk_page(const Context& ctx, uint64_t pgno, int level, std::string_view lo, bool has_lo,
                 std::string_view hi, bool has_hi, Counts& counts) {
    claim(pgno, ctx, "tree");
    std::vector<unsigned char> page;
    read_page(pgno, page, m_psize);
    const std::string where = ctx.name + ": page " + std::to_string(pgno);
    if (load<uint64_t>(page.data()) != pgno) {
      damage(where + " says it is page " + std::to_string(load<uint64_t>(page.data())));
    }
    const uint16_t flags = load<uint16_t>(page.data() + 10);
    const uint16_t lower = load<uint16_t>(page.data() + 12);
    const uint16_t upper = load<uint16_t>(page.data() + 14);
    const bool leaf = level == ctx.depth;
    if (flags != (leaf ? kLeaf : kBranch)) {
      damage(where + " at level " + std::to_string(level) + " of " + std::to_string(ctx.depth) + " has flags " +
             std::to_string(flags));
    }
    if (lower < kPageHeader || (lower - kPageHeader) % 2 != 0 || upper > m_psize || lower > upper) {
      damage(where + ": free-space bounds " + std::to_string(lower) + ".." + std::to_string(upper));
    }
    const size_t n = (lower - kPageHeader) / 2;
    if (n < (leaf ? 1u : 2u)) {
      damage(where + ": " + (leaf ? "leaf" : "branch") + " page with " + std::to_string(n) + " keys");
    }
    (leaf ? counts.leaf : counts.branch) += 1;

    std::vector<std::string> keys(n);  // copies: `page` is reused by nothing, but children need theirs
    std::vector<uint64_t> children(leaf ? 0 : n);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t off = load<uint16_t>(page.data() + kPageHeader + 2 * i);
      if (off < upper || off + kNodeHeader > m_psize) {
        damage(where + ": node " + std::to_string(i) + " at offset " + std::to_string(off));
      }
      const unsigned char* node = page.data() + off;
      const uint16_t lo16 = load<uint16_t>(node), hi16 = load<uint16_t>(node + 2);
      const uint16_t nflags = load<uint16_t>(node + 4), ksize = load<uint16_t>(node + 6);
      if (ksize > kMaxKeySize || off + kNodeHeader + ksize > m_psize) {
        damage(where + ": node " + std::to_string(i) + " has a key of " + std::to_string(ksize) + " bytes");
      }
      std::string_view key(reinterpret_cast<const char*>(node + kNodeHeader), ksize);
      const bool check_key = leaf || i > 0;  // a branch page's first key is implicit
      if (check_key) {
        if (ctx.free_list && ksize != 8) {
          damage(where + ": free-list key of " + std::to_string(ksize) + " bytes");
        }
        if (i > (leaf ? 0u : 1u) && compare(ctx, keys[i - 1], key) >= 0) {
          damage(where + ": keys out of order at node " + std::to_string(i));
        }
        if ((has_lo && compare(ctx, key, lo) < 0) || (has_hi && compare(ctx, key, hi) >= 0)) {
          damage(where + ": key of node " + std::to_string(i) + " outside the range its parent gives");
        }
      }
      keys[i].assign(key);
      const uint64_t data_size = lo16 | (uint64_t{hi16} << 16);
      if (!leaf) {
        children[i] = data_size | (uint64_t{nflags} << 32);
        continue;
      }
      ++counts.entries;
      const unsigned char* data = node + kNodeHeader + ksize;
      const size_t room = m_psize - (off + kNodeHeader + ksize);
      if (nflags == kBigData) {
        if (room < 8) {
          damage(where + ": node " + std::to_string(i) + " overflow page number runs off the page");
        }
        check_overflow(ctx, where, load<uint64_t>(data), data_size, counts);
      } else if (nflags == kSubData && ctx.main) {
        if (data_size != kDbRecord || room < kDbRecord) {
          damage(where + ": sub-database record of " + std::to_string(data_size) + " bytes");
        }
        m_subdbs.push_back({std::string(key), parse_db(data)});
      } else if (nflags == 0) {
        if (data_size > room) {
          damage(where + ": node " + std::to_string(i) + " has " + std::to_string(data_size) +
                 " bytes of data, the page has " + std::to_string(room));
        }
        if (ctx.free_list) {
          check_free_list(ctx, where, data, data_size);
        }
      } else {
        damage(where + ": node " + std::to_string(i) + " has flags " + std::to_string(nflags));
      }
    }
    if (leaf) {
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      const bool child_has_lo = i > 0 || has_lo;
      std::string_view child_lo = i > 0 ? std::string_view(keys[i]) : lo;
      const bool child_has_hi = i + 1 < n || has_hi;
      std::string_view child_hi = i + 1 < n ? std::string_view(keys[i + 1]) : hi;
      walk_page(ctx, children[i], level + 1, child_lo, child_has_lo, child_hi, child_has_hi, counts);
    }
  }

  void check_overflow(const Context& ctx, const std::string& where, uint64_t pgno, uint64_t size,
                      Counts& counts) {
    claim(pgno, ctx, "overflow");
    std::vector<unsigned char> head;
    read_page(pgno, head, kPageHeader);
    const uint16_t flags = load<uint16_t>(head.data() + 10);
    const uint32_t pages = load<uint32_t>(head.data() + 12);
    const uint64_t need = (kPageHeader - 1 + size) / m_psize + 1;
    if (load<uint64_t>(head.data()) != pgno || flags != kOverflow || pages < need ||
        pgno + pages - 1 > m_last) {
      damage(where + ": overflow page " + std::to_string(pgno) + " (flags " + std::to_string(flags) + ", " +
             std::to_string(pages) + " pages) for a value of " + std::to_string(size) + " bytes");
    }
    for (uint64_t p = pgno + 1; p < pgno + pages; ++p) {
      claim(p, ctx, "overflow");
    }
    counts.overflow += pages;
    if (ctx.free_list) {
      std::vector<unsigned char> value(size);
      ssize_t got = pread_full(m_fd, value.data(), size, pgno * m_psize + kPageHeader);
      if (got < 0) {
        throw ReadError{os_error("cannot read", m_path)};
      }
      if (static_cast<uint64_t>(got) != size) {
        damage(where + ": overflow value past the end of the file");
      }
      check_free_list(ctx, where, value.data(), size);
    }
  }

  // A free-list value: a count, then that many page numbers.
  void check_free_list(const Context& ctx, const std::string& where, const unsigned char* data, uint64_t size) {
    if (size < 8 || size % 8 != 0) {
      damage(where + ": free-list value of " + std::to_string(size) + " bytes");
    }
    const uint64_t count = load<uint64_t>(data);
    if (count > size / 8 - 1) {
      damage(where + ": free list of " + std::to_string(count) + " pages in " + std::to_string(size) + " bytes");
    }
    for (uint64_t i = 1; i <= count; ++i) {
      claim(load<uint64_t>(data + 8 * i), ctx, "free");
    }
  }

 public:
  struct SubDb {
    std::string name;
    DbRecord db;
  };
  std::vector<SubDb> m_subdbs;

 private:
  int m_fd;
  const std::string& m_path;
  uint64_t m_psize;
  uint64_t m_last;
  std::vector<bool> m_used;
  uint64_t m_pages_read = 0;
};

bool power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// What is wrong with one meta page, or "".
std::string check_meta(const Meta& m, int slot, uint64_t psize) {
  const std::string where = "meta page " + std::to_string(slot);
  if (m.page_no != static_cast<uint64_t>(slot) || (m.page_flags & kMeta) == 0) {
    return where + " is not a meta page";
  }
  if (m.magic != kMagic) {
    return where + " has no LMDB magic";
  }
  if (m.version != kDataVersion) {
    return where + " has data version " + std::to_string(m.version);
  }
  if (m.free_db.pad != psize) {
    return where + " has page size " + std::to_string(m.free_db.pad) + ", the other " + std::to_string(psize);
  }
  if (m.address != 0) {
    return where + " asks for a fixed map address";
  }
  if (m.free_db.flags != kIntegerKey || m.main_db.flags != 0) {
    return where + " has database flags " + std::to_string(m.free_db.flags) + "/" +
           std::to_string(m.main_db.flags);
  }
  if (m.last_page < 1) {
    return where + " has last page " + std::to_string(m.last_page);
  }
  for (const DbRecord* db : {&m.free_db, &m.main_db}) {
    if (db->root != kInvalidPage && (db->root < 2 || db->root > m.last_page)) {
      return where + " has root page " + std::to_string(db->root) + " outside pages 2.." +
             std::to_string(m.last_page);
    }
  }
  return "";
}

}  // namespace

Expected<DataFileCheck, Failure> check_data_file(int fd, const std::string& path, bool walk) {
  DataFileCheck out;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return fail(os_error("cannot inspect", path));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    out.verdict = DataFileCheck::Verdict::Empty;
    return out;
  }
  unsigned char first[kMetaEnd];
  ssize_t got = pread_full(fd, first, sizeof first, 0);
  if (got < 0) {
    return fail(os_error("cannot read", path));
  }
  auto damaged = [&](std::string why) {
    out.verdict = DataFileCheck::Verdict::Damaged;
    out.why = std::move(why);
    return out;
  };
  if (static_cast<size_t>(got) < sizeof first) {
    out.verdict = DataFileCheck::Verdict::Incomplete;
    out.why = "it has " + std::to_string(size) + " bytes, less than its first meta page";
    return out;
  }
  const uint64_t psize = load<uint32_t>(first + kMetaFreeDb + kDbPad);
  if (!power_of_two(psize) || psize < 512 || psize > 65536) {
    return damaged("meta page 0 has page size " + std::to_string(psize));
  }
  if (size < 2 * psize) {
    // LMDB writes both meta pages with one write when it creates the file.
    out.verdict = DataFileCheck::Verdict::Incomplete;
    out.why = "it has " + std::to_string(size) + " bytes, less than its two meta pages";
    return out;
  }
  unsigned char second[kMetaEnd];
  got = pread_full(fd, second, sizeof second, psize);
  if (got < 0) {
    return fail(os_error("cannot read", path));
  }
  // The meta pages are read while writers may commit: a pair that looks wrong (ids 3512 and 3517:
  // commits happened between the two reads) is damage only if a second reading gives the same
  // bytes; otherwise the file is Busy and the caller checks again.
  auto meta_damaged = [&](std::string why) {
    unsigned char now[2][kMetaEnd];
    struct stat again;
    if (::fstat(fd, &again) != 0 || static_cast<uint64_t>(again.st_size) != size ||
        pread_full(fd, now[0], kMetaEnd, 0) != static_cast<ssize_t>(kMetaEnd) ||
        pread_full(fd, now[1], kMetaEnd, psize) != static_cast<ssize_t>(kMetaEnd) ||
        std::memcmp(now[0], first, kMetaEnd) != 0 || std::memcmp(now[1], second, kMetaEnd) != 0) {
      out.verdict = DataFileCheck::Verdict::Busy;
      out.why = "a transaction committed while the meta pages were read";
      return out;
    }
    return damaged(std::move(why));
  };
  const Meta metas[2] = {parse_meta(first), parse_meta(second)};
  for (int i = 0; i < 2; ++i) {
    std::string why = check_meta(metas[i], i, psize);
    if (!why.empty()) {
      return meta_damaged(why);
    }
  }
  // LMDB commits transaction t into meta slot t % 2 and reads the slot with the larger id.
  const int newest = metas[0].txnid < metas[1].txnid ? 1 : 0;
  const Meta& meta = metas[newest];
  const Meta& older = metas[1 - newest];
  const bool fresh = metas[0].txnid == 0 && metas[1].txnid == 0;
  if (!fresh && (meta.txnid % 2 != static_cast<uint64_t>(newest) || older.txnid + 1 != meta.txnid)) {
    return meta_damaged("the meta pages have transaction ids " + std::to_string(metas[0].txnid) + " and " +
                        std::to_string(metas[1].txnid));
  }
  if (older.last_page > meta.last_page) {
    return meta_damaged("the older meta page uses more pages than the newer");
  }
  if ((meta.last_page + 1) > size / psize) {
    return meta_damaged("the newest meta page uses pages up to " + std::to_string(meta.last_page) +
                        ", the file has " + std::to_string(size / psize));
  }

  if (!walk) {
    out.verdict = DataFileCheck::Verdict::Sound;
    out.page_size = psize;
    out.last_page = meta.last_page;
    out.txnid = meta.txnid;
    out.pages_read = 2;
    return out;
  }
  try {
    Walker walker(fd, path, psize, meta.last_page);
    walker.walk_db(meta.free_db, "free-page database", /*free_list=*/true, /*main=*/false);
    walker.walk_db(meta.main_db, "main database", false, true);
    const auto subdbs = walker.m_subdbs;
    for (const auto& sub : subdbs) {
      if (sub.db.flags != 0) {
        walker.damage("database " + sub.name + " has flags " + std::to_string(sub.db.flags));
      }
      walker.walk_db(sub.db, "database " + sub.name, false, false);
    }
    out.pages_read = walker.pages_read() + 2;
  } catch (const Damage& d) {
    out.verdict = DataFileCheck::Verdict::Damaged;
    out.why = d.why;
  } catch (const ReadError& e) {
    return fail(e.message);
  }

  // A commit in the meantime may have reused pages read above: then nothing can be concluded.
  unsigned char again[2][kMetaEnd];
  if (pread_full(fd, again[0], kMetaEnd, 0) != static_cast<ssize_t>(kMetaEnd) ||
      pread_full(fd, again[1], kMetaEnd, psize) != static_cast<ssize_t>(kMetaEnd)) {
    return fail(os_error("cannot read", path));
  }
  if (std::memcmp(again[0], first, kMetaEnd) != 0 || std::memcmp(again[1], second, kMetaEnd) != 0) {
    out.verdict = DataFileCheck::Verdict::Busy;
    out.why = "a transaction committed during the check";
    return out;
  }
  if (out.verdict == DataFileCheck::Verdict::Damaged) {
    return out;
  }
  out.verdict = DataFileCheck::Verdict::Sound;
  out.page_size = psize;
  out.last_page = meta.last_page;
  out.txnid = meta.txnid;
  return out;
}

Expected<std::string, Failure> check_lock_file(int fd, uint64_t size, const std::string& path) {
  // MDB_txninfo: magic u32, format u32, the reader mutex, txnid, reader count; readers (64 bytes
  // each) from byte 128 (two 64-byte header lines, minus the one reader slot they declare).
  struct Header {
    uint32_t magic;
    uint32_t format;
    pthread_mutex_t mutex;
    uint64_t txnid;
    uint32_t readers;
  };
  constexpr uint64_t kReadersAt = 128, kReaderSize = 64;
  if (size == 0) {
    return std::string();
  }
  if (size < kReadersAt + kReaderSize) {
    return "it has " + std::to_string(size) + " bytes, less than one reader slot";
  }
  if (size > (uint64_t{64} << 20)) {
    return "it has " + std::to_string(size) + " bytes";
  }
  unsigned char buf[sizeof(Header)];
  ssize_t got = pread_full(fd, buf, sizeof buf, 0);
  if (got < 0) {
    return fail(os_error("cannot read", path));
  }
  if (static_cast<size_t>(got) != sizeof buf) {
    return std::string("it is shorter than its header");
  }
  const uint32_t magic = load<uint32_t>(buf);
  if (magic == 0) {
    return std::string();  // not initialised yet: the first process to open it does that
  }
  if (magic != kMagic) {
    return std::string("its header has no LMDB magic");
  }
  const uint32_t readers = load<uint32_t>(buf + offsetof(Header, readers));
  const uint64_t slots = (size - kReadersAt) / kReaderSize;
  if (readers > slots) {
    return "its header counts " + std::to_string(readers) + " readers in " + std::to_string(slots) + " slots";
  }
  return std::string();
}

}  // namespace kg::cache

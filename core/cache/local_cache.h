// The local cache (docs/design.md §7): an LMDB environment with three named databases.
//
//   ac   key (32 hex) → AcRecord, JSON        "action cache": what a spec resolved to
//   cas  digest (32 hex) → blob bytes          content-addressed: sources, headers, reports
//   meta "format" → kCacheFormatVersion        refuse to open a cache of another format
//
// Digest = XXH3-128 of the blob, re-checked on every read: a mismatch is reported as corrupt,
// the entry is evicted, and the read is a miss. An AC record that does not parse is treated the
// same way. Writers are serialised by LMDB; readers never block and never write. Every commit is
// synced to disk (no MDB_NOSYNC): a crash loses nothing that was committed. Safe for many processes
// at once.
//
// Map size: LMDB reserves address space up front (the file itself stays sparse). A write that
// finds the map full doubles it (up to Options::max_map_size) and retries; a reader that finds
// another process has grown the map adopts the new size. Callers never see MDB_MAP_FULL or
// MDB_MAP_RESIZED.
//
// Threads: every method of one LocalCache may be called from several threads at once (the
// environment is opened with MDB_NOTLS; a map resize waits until no transaction of this process is
// open). Moving or destroying a LocalCache while another thread uses it is not allowed. One
// LocalCache per process is typical; opening the same directory again in the same process shares
// the underlying environment (LMDB forbids opening one environment twice in a process).
// After fork(), the child must not use a LocalCache opened by the parent: open a new one.
//
// Damage (core/cache/validate.h). Before LMDB maps data.mdb, open() checks it with pread(): both
// meta pages, and, when the file changed since it last passed (the stamp file `checked` in the
// directory names its device, inode, size and times), every page of every database reachable
// from the newest meta page. lock.mdb's header is checked too. A file that fails is moved, with
// lock.mdb, into <dir>/corrupt-<UTC time>-<pid>/, one warning names where, and the cache carries
// on empty (read-only: open() reports NotFound, a miss). A data.mdb shorter than its two meta
// pages (its creation failed, e.g. on a full disk) holds nothing and is removed quietly. LMDB
// errors that mean damage in a later call (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID,
// MDB_VERSION_MISMATCH, ...) do the same: the environment is closed, its files moved aside, the
// call answered from an empty cache (a miss). Opening, checking and moving aside hold flock() on
// the directory; only the data file that was found damaged is ever moved.
// What is guaranteed: LMDB is only given a data file whose reachable pages, nodes and overflow
// runs lie inside the file and are well-formed, so its reads through the map stay inside the
// file: no SIGSEGV, SIGBUS or assertion from a damaged or truncated file, whatever its bytes.
// Writes never go through the map (no MDB_WRITEMAP: LMDB uses pwrite), so a full disk is an error
// code, never a fault; lock.mdb (which LMDB does write through a map) has its blocks allocated
// before LMDB maps it. Not covered: bytes that change after the check without changing the
// file's times (a failing disk under a long-running process), or another program writing the
// file while it is open; and a blob's or record's contents, which are checked on every read
// instead (digests, parsing). There is deliberately no SIGSEGV/SIGBUS handler that longjmps out
// of LMDB: the jump would skip C++ destructors of the transaction bodies (undefined behaviour),
// leave LMDB's writer mutex in lock.mdb held by a thread that goes on living, and take the
// process's signal dispositions from the program that links the library; checking before
// mapping leaves LMDB nothing to fault on.
//
// Hostile directories: the directory must belong to this user and not be writable by group or
// others; data.mdb and lock.mdb must be regular files of this user with one name (no symbolic or
// hard links) not writable by others. Otherwise open() fails with "refusing to use ...".
//
// Full disks: a failure whose cause is ENOSPC or EDQUOT (also when LMDB reports a short write as
// EIO) says "No space left on device" and names the directory.
//
// Transactions: each lives in a Txn (lmdb_txn.h) that aborts unless committed: no error,
// early return or exception leaves the write lock held.
//
// Access times: reads never write. `touch()` records an access, writing at most once per
// kTouchIntervalSeconds per entry; callers that serve a hit (and are not read-only) call it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/entry.h"
#include "cache/record.h"
#include "util/expected.h"

namespace kg::cache {

struct Stats {
  uint64_t ac_entries = 0;
  uint64_t cas_entries = 0;
  uint64_t cas_bytes = 0;   // sum of blob sizes
  uint64_t map_size = 0;    // bytes of address space reserved for the environment (this process)
  uint64_t used_bytes = 0;  // pages in use * page size (the file's high-water mark)
};

// touch() writes a new last_access_unix only when the stored one is at least this old.
inline constexpr int64_t kTouchIntervalSeconds = 3600;

class LocalCache {
 public:
  struct Options {
    // Open without write access. Fails (NotFound) when no cache exists in the directory.
    bool read_only = false;
    // Map size to start with for this process. Testing knob; the default suits real use.
    uint64_t initial_map_size = uint64_t{1} << 30;
    // A write that would need more fails with an error naming the directory.
    uint64_t max_map_size = uint64_t{64} << 30;
    // Receives warnings (corrupt entries evicted, ...), one line each without a newline; called
    // from whichever thread made the call that found the problem.
    // Empty: KG_LOG_WARN (util/log.h), i.e. "kernelgen: warning: <line>" on stderr.
    std::function<void(const std::string&)> on_warning;
    // The clock touch() uses when not given a time: seconds since the epoch. Empty: time(2).
    // Testing knob (a fake clock).
    std::function<int64_t()> now;
  };

  // Opens the cache in `dir`, creating the directory (and its parents, mode 0700) and an empty
  // cache when needed, unless `options.read_only`. Damaged files are moved aside first (see
  // "Damage" above; one warning through options.on_warning).
  //   dir      path of the cache directory; need not be absolute.
  //   options  see Options. When `dir` is already open in this process the environment is
  //            shared, with the map sizes of the first open.
  // Returns the open cache. Errors (each message names `dir`):
  //   NotFound  read_only and there is no cache in `dir`.
  //   Error     the directory cannot be created or is not writable (message has the OS error);
  //             it or its files are refused as hostile (see above); no space left on device;
  //             it holds a cache of another format, or an LMDB environment that is not a
  //             kernelgen cache; it is already open read-only in this process and a writable
  //             open was asked for; any other LMDB or OS failure.
  static Expected<LocalCache, Failure> open(const std::string& dir, const Options& options);
  // Same as open(dir, Options{.read_only = read_only}).
  static Expected<LocalCache, Failure> open(const std::string& dir, bool read_only = false);

  LocalCache(LocalCache&&) noexcept;
  LocalCache& operator=(LocalCache&&) noexcept;
  // Closes this handle; the environment closes with the last handle of the process on it.
  ~LocalCache();

  // Looks up the record for `key`.
  // Returns a copy owned by the caller. Errors:
  //   NotFound  no record, or the stored record is corrupt (does not parse, wrong format, wrong
  //             key): then it is evicted (unless read-only) and a warning is logged.
  //   Error     LMDB failure.
  Expected<AcRecord, Failure> get_record(const std::string& key);

  // Stores `record` under record.key, replacing any record there. Store the blobs first: every
  // non-empty *_digest must name a blob in the cache. last_access_unix is stored as given.
  // Errors (Error kind): read-only cache; record.key is not a digest; a digest field names a
  // blob that is not stored; the map cannot grow past max_map_size; LMDB failure.
  Expected<void, Failure> put_record(const AcRecord& record);

  // Stores every entry of `entries` (their blobs, then their records) in one write transaction,
  // synced once: a crash leaves all of them or none, and no record is ever visible before the
  // blobs it names. Blobs already stored with the same bytes are left alone (one stored under a
  // digest its bytes fail is replaced, with a warning, as put_blob does). A record replaces any
  // record under its key; last_access_unix is stored as given. Empty `entries`: nothing happens.
  // Errors (Error kind), in which case nothing at all was written: read-only cache; a record's
  // key or a digest it names is not a digest; a blob's bytes do not hash to its digest; a digest
  // a record names is neither among its blobs nor stored; the map cannot grow past
  // max_map_size; LMDB failure.
  Expected<void, Failure> put_entries(const std::vector<EntryToStore>& entries);

  // Deletes the record for `key` (its blobs stay; gc removes unreferenced blobs).
  // Errors: NotFound when there is no such record; Error when read-only or on LMDB failure.
  Expected<void, Failure> remove_record(const std::string& key);

  // Records an access to `key`: sets last_access_unix to `now_unix` (0: the current time) when
  // the stored value is at least kTouchIntervalSeconds older, so that calling it on every hit
  // costs a read, and a write at most once an hour per entry.
  // Returns true when it wrote. Errors: NotFound (no record, or corrupt as in get_record);
  // Error when read-only or on LMDB failure.
  Expected<bool, Failure> touch(const std::string& key, int64_t now_unix = 0);

  // Returns the blob stored under `digest`, as bytes owned by the caller. The bytes are hashed
  // again and compared with `digest`. Errors:
  //   NotFound  no such blob, or it failed the digest check: then a warning
  //             "cache: blob <digest> failed its digest check; evicted" is logged and the entry
  //             deleted (unless read-only).
  //   Error     LMDB failure.
  Expected<std::string, Failure> get_blob(const std::string& digest);

  // Stores `content` and returns its digest (xxh3_128_hex). Idempotent: storing the same content
  // again writes nothing, except that an entry under that digest which fails its digest check is
  // replaced. Errors (Error kind): read-only cache; the map cannot grow past max_map_size; LMDB
  // failure.
  Expected<std::string, Failure> put_blob(const std::string& content);

  // Deletes the blob under `digest` (for gc; records pointing at it will then miss).
  // Errors: NotFound when absent; Error when read-only or on LMDB failure.
  Expected<void, Failure> remove_blob(const std::string& digest);

  // All records, sorted by name, then key. Corrupt records are skipped, logged and evicted
  // (unless read-only). Errors: Error on LMDB failure.
  Expected<std::vector<AcRecord>, Failure> list_records();

  // Every blob's digest and size in bytes, in digest order (for garbage collection: gc.h).
  Expected<std::vector<std::pair<std::string, uint64_t>>, Failure> list_blob_sizes();

  // Entry counts and sizes; cas_bytes reads every blob's size (not its bytes).
  // Errors: Error on LMDB failure.
  Expected<Stats, Failure> stats();

  const std::string& dir() const { return m_dir; }
  bool read_only() const;

 private:
  struct Impl;
  LocalCache(std::unique_ptr<Impl> impl, std::string dir);
  std::unique_ptr<Impl> m_impl;
  std::string m_dir;
};

// `record`'s fields as a JSON object (what `kernelgen cache show` prints; the stored form adds the
// cache format version).
nlohmann::json record_json(const AcRecord& record);

// The stored form of `record` as text: record_json plus "format" = kCacheFormatVersion. What the
// local cache keeps in `ac`, and what remote tiers store (storage/remote.h).
std::string stored_record_text(const AcRecord& record);

// Parses a record in its stored form (stored_record_text) found under `key`. Errors (Error kind;
// the message says why it is damaged): not a JSON object, another format version, a missing or
// mistyped field, an unknown verification state, a record that names another key.
Expected<AcRecord, Failure> parse_record_json(const std::string& key, std::string_view text);

}  // namespace kg::cache

// Structural checks of an LMDB environment's files, done with pread() before LMDB maps them.
//
// LMDB trusts the bytes of its data file: a page number past the end of the file, a node that
// runs off its page or a branch page with one key makes it read outside its map (SIGSEGV, SIGBUS)
// or fail an internal assertion (abort). check_data_file() reads the file the way LMDB would, but
// through pread() into a buffer, and checks everything LMDB relies on, for the newest meta page's
// snapshot:
//   - both meta pages: page flags, magic, data version, page size (a power of two, 512..65536),
//     no fixed map address, the flags of the free-page and main databases, last page number
//     inside the file, root page numbers inside the file, transaction ids (the newest is in the
//     slot LMDB writes it to, the other one is one older);
//   - every page of every database reachable from the newest meta (free-page list, main, and the
//     named databases it lists): page number and flags, key count and node offsets inside the
//     page, branch pages with at least two keys, leaves with at least one, every leaf at the
//     database's depth (at most 32), keys in order and inside the range their parent gives them,
//     node flags LMDB accepts for a database without duplicates, sub-database records (48 bytes,
//     flags 0, consistent root/depth), overflow runs (flags, page count enough for the value,
//     inside the file), page and entry counts equal to those the database record states;
//   - free-page lists: well-formed, sorted, inside the file; no page used twice (by two trees,
//     or by a tree and the free list).
// Overflow pages are read only for their 16-byte header: their contents are values (records are
// parsed, blobs re-hashed on every read). The cost is one pread per branch or leaf page and per
// overflow run: 12 ms for a cache of 3000 kernels (163 MiB, 4889 pages read, file in the page
// cache). LocalCache stamps a file that passed and checks an unchanged one by its meta pages
// only (0.2 ms for the same cache).
//
// A writer that commits while the check runs can reuse pages the check is reading: the check
// compares the meta pages before and after and reports Busy when they changed, so that a sound
// file is never reported damaged because it was in use.
#pragma once

#include <cstdint>
#include <string>

#include "util/expected.h"

namespace kg::cache {

struct DataFileCheck {
  enum class Verdict {
    Empty,       // zero bytes: LMDB initialises it
    Incomplete,  // shorter than its two meta pages (creation failed, e.g. on a full disk): holds
                 // no committed data
    Sound,       // every check passed
    Damaged,     // a check failed: `why` says which
    Busy,        // another process committed during the check; check again
  };
  Verdict verdict = Verdict::Empty;
  std::string why;           // Damaged/Incomplete: what is wrong, e.g. "page 17: branch page with 1 key"
  uint64_t page_size = 0;    // from the meta pages (Sound)
  uint64_t last_page = 0;    // newest meta's last used page number (Sound)
  uint64_t txnid = 0;        // newest meta's transaction id (Sound)
  uint64_t pages_read = 0;   // branch, leaf and meta pages read, plus overflow headers
};

// Checks the LMDB data file open on `fd` (read access; `path` only names it in messages).
//   walk  false: the meta pages and the file size only (for a file that passed the full check
//         and has not changed since).
// Returns the verdict. Errors: Error when reading the file fails (message names `path` and the
// OS error).
Expected<DataFileCheck, Failure> check_data_file(int fd, const std::string& path, bool walk = true);

// Checks the header of the LMDB lock file open on `fd` (size `size` bytes): an initialised
// header (magic set) must name LMDB's lock format and a reader count that fits the file; a
// header of zeros is a file LMDB has not initialised yet, which it does itself. Returns an empty
// string when sound, else what is wrong. Errors: Error when reading fails.
Expected<std::string, Failure> check_lock_file(int fd, uint64_t size, const std::string& path);

// The size LMDB 0.9 gives a new lock file for its default 126 readers (8 KiB on x86-64).
inline constexpr uint64_t kLockFileSize = 8192;

}  // namespace kg::cache

// Whole-file reads and crash-safe writes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/expected.h"

namespace kg {

// "<what> <path>: <strerror(errno)>", for failures of system calls on `path`. Reads errno, so call
// it before anything else can change it.
std::string os_error(const std::string& what, const std::string& path);

// Reads the whole file. Failure message names the path and the OS error.
Expected<std::string, Failure> read_file(const std::string& path);

// Writes `content` to `path` atomically: a temporary file in the same directory, fsync, rename.
// Readers see the old or the new content, never a mix; a crash leaves at most a stray temp file.
Expected<void, Failure> write_file_atomic(const std::string& path, std::string_view content);

// Like write_file_atomic, but leaves the file (and its mtime) alone when it already holds
// `content`, so build tools do not rebuild what did not change. Returns true when it wrote.
Expected<bool, Failure> write_file_if_changed(const std::string& path, std::string_view content);

// mkdir -p; `mode` applies to directories it creates.
Expected<void, Failure> make_dirs(const std::string& path, unsigned mode = 0755);

// The checks of a directory (or file) that kernelgen trusts: `mode` and `uid` (from lstat) must
// belong to the effective user, with none of the `forbidden` permission bits set. Errors:
//   "<refuse>it is owned by uid U, not E<advice>"
//   "<refuse>its mode is 0755, <forbidden_words><advice>"
Expected<void, Failure> check_owner_and_mode(unsigned mode, unsigned uid, unsigned forbidden,
                                             const std::string& forbidden_words, const std::string& refuse,
                                             const std::string& advice);

// Allocates the blocks of bytes [offset, offset + length) of the file open on `fd` (fallocate(2)
// mode 0: fills holes, may extend the file, never changes content). Returns 0 or the errno:
// ENOSPC/EDQUOT when there is no room, EOPNOTSUPP where the file system cannot allocate ahead.
int allocate_file(int fd, uint64_t offset, uint64_t length);

// True when the file system of the file open on `fd` has no room for `bytes` more: a probe
// allocation past the end of the file (released again; size and content never change) fails
// with ENOSPC or EDQUOT, or, where the file system cannot allocate ahead, statvfs shows less free.
// For telling "disk full" apart from other causes when a library reports a short write as EIO.
bool out_of_space(int fd, uint64_t bytes = 64 << 10);

}  // namespace kg

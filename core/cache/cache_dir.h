// The cache directory's files outside LMDB: who may own them, the lock that serialises opening
// and recovery between processes, moving damaged files aside, and the stamp of the last full check.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "util/expected.h"
#include "util/file.h"

namespace kg::cache {

// The environment's files, as validated before mapping.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

// Holds flock(LOCK_EX) on the cache directory: opening, checking and moving damaged files aside
// are serialised between processes (flock and LMDB's fcntl locks do not interact on Linux).
class DirLock {
 public:
  static Expected<DirLock, Failure> take(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return fail(os_error("cannot open the cache directory", dir));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        std::string msg = os_error("cannot lock the cache directory", dir);
        ::close(fd);
        return fail(msg);
      }
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : m_fd(o.m_fd) { o.m_fd = -1; }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (m_fd >= 0) {
      ::close(m_fd);  // releases the lock
    }
  }
  int fd() const { return m_fd; }

 private:
  explicit DirLock(int fd) : m_fd(fd) {}
  int m_fd;
};

// Moves data.mdb and lock.mdb of `dir` into a new <dir>/corrupt-<UTC time>-<pid>/ and returns its
// path. `expect`: the data file that was found damaged; when data.mdb is another file now
// (someone moved it aside and made a new one first), nothing is moved and "" is returned.
// The caller holds the DirLock. Errors: the directory or a rename fails (OS error).
Expected<std::string, Failure> move_aside(const std::string& dir, const DirLock& lock, const FileId* expect);

// Refuses (Error) a cache directory (`st`: its stat, symbolic links followed) that is not a
// directory, belongs to another user or is writable by group or others.
Expected<void, Failure> check_private_dir(const std::string& dir, const struct stat& st);

// Checks the file `name` in the cache directory open on `dirfd`, filling `st`. Returns false when
// it does not exist. Errors: a symbolic link, not a regular file, another owner, writable by group
// or others, more than one name (hard link).
Expected<bool, Failure> check_own_file(const std::string& dir, int dirfd, const char* name, struct stat& st);

// Makes sure lock.mdb exists with its blocks allocated (LMDB writes it through a shared map, where
// a block the file system cannot allocate is a SIGBUS). `exists`/`st`: what check_own_file found.
// An existing file is only filled in, never resized. A directory this process cannot write is
// left alone. Errors: no space left (says so), other OS errors.
Expected<void, Failure> allocate_lock_file(const std::string& dir, int dirfd, bool exists, const struct stat& st);

// The stamp file in the cache directory: which data.mdb last passed the full check.
inline constexpr const char* kCheckedStamp = "checked";

// The stamp's content for data.mdb with status `st` (device, inode, size, mtime, ctime in ns).
std::string stamp_of(const struct stat& st);

// True when the stamp in the directory open on `dirfd` names data.mdb as it is now (`st`); a
// stamp that is a link, of another owner or writable by others does not count.
bool stamp_matches(int dirfd, const struct stat& st);

}  // namespace kg::cache

#include "cache/cache_dir.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

#include "cache/validate.h"

namespace kg::cache {

namespace {

// "corrupt-<UTC yyyymmddThhmmssZ>-<pid>" (plus "-<n>" when taken).
std::string aside_name(int n) {
  char stamp[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::string name = std::string("corrupt-") + stamp + "-" + std::to_string(::getpid());
  return n == 0 ? name : name + "-" + std::to_string(n);
}

}  // namespace

Expected<std::string, Failure> move_aside(const std::string& dir, const DirLock& lock, const FileId* expect) {
  struct stat st;
  if (::fstatat(lock.fd(), "data.mdb", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT && expect != nullptr) {
      return std::string();
    }
    if (errno != ENOENT) {
      return fail(os_error("cannot inspect", dir + "/data.mdb"));
    }
  } else if (expect != nullptr && !(FileId{st.st_dev, st.st_ino} == *expect)) {
    return std::string();
  }
  std::string name;
  for (int n = 0;; ++n) {
    name = aside_name(n);
    if (::mkdirat(lock.fd(), name.c_str(), 0700) == 0) {
      break;
    }
    if (errno != EEXIST || n > 100) {
      return fail(os_error("cannot create", dir + "/" + name));
    }
  }
  for (const char* file : {"data.mdb", "lock.mdb"}) {
    const std::string to = name + "/" + file;
    if (::renameat(lock.fd(), file, lock.fd(), to.c_str()) != 0 && errno != ENOENT) {
      return fail(os_error(std::string("cannot move ") + file + " to", dir + "/" + to));
    }
  }
  return dir + "/" + name;
}

Expected<void, Failure> check_private_dir(const std::string& dir, const struct stat& st) {
  const std::string refuse = "refusing to use the kernel cache directory " + dir + ": ";
  const std::string advice = "; make it a directory of your own with mode 0700, or set KERNELGEN_CACHE_DIR to one";
  if (!S_ISDIR(st.st_mode)) {
    return fail("the cache directory " + dir + " is not a directory");
  }
  return check_owner_and_mode(st.st_mode, st.st_uid, 022, "writable by group or others", refuse, advice);
}

Expected<bool, Failure> check_own_file(const std::string& dir, int dirfd, const char* name, struct stat& st) {
  const std::string path = dir + "/" + name;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return false;
    }
    return fail(os_error("cannot inspect", path));
  }
  const std::string refuse = "refusing to use the kernel cache " + dir + ": " + name + " ";
  const std::string advice = "; remove it (the cache is rebuilt) or set KERNELGEN_CACHE_DIR to another directory";
  if (S_ISLNK(st.st_mode)) {
    return fail(refuse + "is a symbolic link" + advice);
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(refuse + "is not a regular file" + advice);
  }
  if (st.st_uid != ::geteuid()) {
    return fail(refuse + "is owned by uid " + std::to_string(st.st_uid) + ", not " + std::to_string(::geteuid()) +
                advice);
  }
  if ((st.st_mode & 022) != 0) {
    return fail(refuse + "is writable by group or others" + advice);
  }
  if (st.st_nlink != 1) {
    return fail(refuse + "has " + std::to_string(st.st_nlink) + " names (hard links)" + advice);
  }
  return true;
}

Expected<void, Failure> allocate_lock_file(const std::string& dir, int dirfd, bool exists, const struct stat& st) {
  const std::string path = dir + "/lock.mdb";
  int fd = exists ? ::openat(dirfd, "lock.mdb", O_RDWR | O_NOFOLLOW | O_CLOEXEC)
                  : ::openat(dirfd, "lock.mdb", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EACCES || errno == EROFS) {
      return {};  // a read-only cache: LMDB decides what it can do
    }
    return fail(os_error("cannot open", path));
  }
  const uint64_t size = exists ? static_cast<uint64_t>(st.st_size) : kLockFileSize;
  if (size > 0 && (!exists || static_cast<uint64_t>(st.st_blocks) * 512 < size)) {
    int rc = allocate_file(fd, 0, size);
    if (rc == ENOSPC || rc == EDQUOT) {
      ::close(fd);
      if (!exists) {
        ::unlinkat(dirfd, "lock.mdb", 0);
      }
      return fail("cannot create the lock file of cache " + dir + ": " + std::strerror(ENOSPC) + " (" + path +
                  "); free space in " + dir + " or set KERNELGEN_CACHE_DIR to a directory on another file system");
    }
  }
  ::close(fd);
  return {};
}

std::string stamp_of(const struct stat& st) {
  auto ns = [](const struct timespec& t) { return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec); };
  return "kernelgen cache check 1 " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
         std::to_string(st.st_size) + " " + ns(st.st_mtim) + " " + ns(st.st_ctim) + "\n";
}

bool stamp_matches(int dirfd, const struct stat& st) {
  int fd = ::openat(dirfd, kCheckedStamp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  struct stat own;
  char buf[256];
  ssize_t n = -1;
  if (::fstat(fd, &own) == 0 && S_ISREG(own.st_mode) && own.st_uid == ::geteuid() && (own.st_mode & 022) == 0 &&
      own.st_nlink == 1) {
    n = ::pread(fd, buf, sizeof buf, 0);
  }
  ::close(fd);
  return n > 0 && std::string_view(buf, static_cast<size_t>(n)) == stamp_of(st);
}

}  // namespace kg::cache

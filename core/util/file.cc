#include "util/file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

namespace kg {

std::string os_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

Expected<std::string, Failure> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(os_error("cannot open", path),
                errno == ENOENT ? Failure::Kind::NotFound : Failure::Kind::Error);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::string msg = os_error("cannot read", path);
      ::close(fd);
      return fail(msg);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Expected<void, Failure> write_file_atomic(const std::string& path, std::string_view content) {
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return fail(os_error("cannot create", tmp));
  }
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::string msg = os_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(msg);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string msg = os_error("cannot flush", tmp);
    ::unlink(tmp.c_str());
    return fail(msg);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = os_error("cannot rename to", path);
    ::unlink(tmp.c_str());
    return fail(msg);
  }
  return {};
}

Expected<bool, Failure> write_file_if_changed(const std::string& path, std::string_view content) {
  auto old = read_file(path);
  if (old && *old == content) {
    return false;
  }
  KG_TRY(write_file_atomic(path, content));
  return true;
}

Expected<void, Failure> make_dirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::path p(path);
  std::filesystem::path cur;
  for (const auto& part : p) {
    cur /= part;
    if (std::filesystem::is_directory(cur, ec)) {
      continue;
    }
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return fail(os_error("cannot create directory", cur.string()));
    }
  }
  return {};
}

int allocate_file(int fd, uint64_t offset, uint64_t length) {
  while (::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
    if (errno != EINTR) {
      return errno;
    }
  }
  return 0;
}

bool out_of_space(int fd, uint64_t bytes) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return false;
  }
  // Round the probe to whole blocks past the end, so that releasing it cannot touch data.
  const uint64_t block = st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
  const uint64_t start = (static_cast<uint64_t>(st.st_size) + block - 1) / block * block;
  const uint64_t length = (bytes + block - 1) / block * block;
  if (::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start), static_cast<off_t>(length)) == 0) {
    ::fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, static_cast<off_t>(start),
                static_cast<off_t>(length));
    return false;
  }
  if (errno == ENOSPC || errno == EDQUOT) {
    return true;
  }
  struct statvfs vfs;
  return ::fstatvfs(fd, &vfs) == 0 && static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < bytes;
}

Expected<void, Failure> check_owner_and_mode(unsigned mode, unsigned uid, unsigned forbidden,
                                             const std::string& forbidden_words, const std::string& refuse,
                                             const std::string& advice) {
  if (uid != ::geteuid()) {
    return fail(refuse + "it is owned by uid " + std::to_string(uid) + ", not " + std::to_string(::geteuid()) +
                advice);
  }
  if ((mode & forbidden) != 0) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode & 07777);
    return fail(refuse + "its mode is " + text + ", " + forbidden_words + advice);
  }
  return {};
}

}  // namespace kg

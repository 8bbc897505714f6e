#include "protocol/paths.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "protocol/protocol.h"
#include "util/file.h"
#include "util/hash.h"
#include "version.h"

namespace kg::protocol {

std::string config_id(const DaemonConfig& config) {
  const std::string protocol = std::to_string(kProtocolVersion);
  return xxh3_128_hex_fields(
             {"kernelgend-config", protocol, kVersion, kGeneratorVersion, kVerifierVersion, config.cache_dir})
      .substr(0, 16);
}

std::string absolute_path(const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::current_path(ec);
    p = ec ? p : cwd / p;
  }
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') {
    s.pop_back();
  }
  return s;
}


Expected<void, Failure> ensure_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("cannot create the kernelgen runtime directory " + dir + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    return fail("cannot use the kernelgen runtime directory " + dir + ": " + std::strerror(errno));
  }
  const std::string refuse = "refusing to use the kernelgen runtime directory " + dir + ": ";
  const std::string advice = "; remove it, or set KERNELGEN_RUNTIME_DIR to a private directory";
  if (S_ISLNK(st.st_mode)) {
    return fail(refuse + "it is a symbolic link" + advice);
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(refuse + "it is not a directory" + advice);
  }
  return check_owner_and_mode(st.st_mode, st.st_uid, 077, "open to group or others (want 0700)", refuse, advice);
}

Expected<DaemonPaths, Failure> daemon_paths(const std::string& dir, const std::string& id) {
  DaemonPaths p;
  p.dir = dir;
  const std::string base = dir + "/kgd-" + id;
  p.socket = base + ".sock";
  p.lock = base + ".lock";
  p.spawn_lock = base + ".spawn";
  p.log = base + ".log";
  if (p.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail("the daemon socket path " + p.socket + " is longer than the " +
                std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                " bytes a Unix socket allows; set XDG_RUNTIME_DIR to a shorter directory");
  }
  return p;
}

}  // namespace kg::protocol

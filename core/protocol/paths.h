// Where a daemon lives (docs/protocol.md §1): its configuration identity, the private runtime
// directory, and the socket, lock and log paths derived from them.
#pragma once

#include <string>

#include "util/expected.h"

namespace kg::protocol {

// Every setting that changes what a daemon produces. Clients and daemons with different configs
// must never share a daemon, so each field here feeds config_id().
struct DaemonConfig {
  std::string cache_dir;  // absolute (absolute_path())
};

// 16 hex digits of XXH3-128 over the protocol version, kVersion, kGeneratorVersion,
// kVerifierVersion and every DaemonConfig field.
std::string config_id(const DaemonConfig& config);

// `path` made absolute against the working directory and lexically normalised ("a/../b" → "b",
// no trailing slash). Does not touch the file system beyond getcwd().
std::string absolute_path(const std::string& path);

// Makes sure `dir` is a private directory of this user: creates it (mode 0700) when missing, then
// checks it is a real directory (not a symlink), owned by the effective user, with no group or
// other permissions. Errors name the directory and which check failed.
Expected<void, Failure> ensure_private_dir(const std::string& dir);

struct DaemonPaths {
  std::string dir;         // the runtime directory
  std::string socket;      // <dir>/kgd-<id>.sock
  std::string lock;        // <dir>/kgd-<id>.lock   held (flock) by the daemon while it listens
  std::string spawn_lock;  // <dir>/kgd-<id>.spawn  held (flock) by a client while it starts one
  std::string log;         // <dir>/kgd-<id>.log
};

// The paths for config id `id` in runtime directory `dir`. Fails when the socket path does not fit
// in a sockaddr_un, with a message saying to set XDG_RUNTIME_DIR to a shorter directory.
Expected<DaemonPaths, Failure> daemon_paths(const std::string& dir, const std::string& id);

}  // namespace kg::protocol

// kernelgen launch -- <compiler> <args...>
//
// The compiler launcher kernelgen_add_attention() sets on a target that compiles generated kernels
// (cmake/KernelGen.cmake chains it in front of any launcher already there, such as ccache). It runs
// the command as given, in the foreground, with this process's descriptors and environment; when the
// command succeeds and wrote an ELF object (-o FILE, --output-file FILE, --output-file=FILE), it
// zeroes nvcc's temporary-file names in it (util/reproducible.h), so the same kernel compiles to
// the same bytes in every clone and on every run. It exits as the command did.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "util/file.h"
#include "util/log.h"
#include "util/reproducible.h"

extern char** environ;

namespace kg::cli {

namespace {

// The object the command writes, or "" if it names none.
std::string output_file(const std::vector<std::string>& command) {
  std::string out;
  for (size_t i = 1; i < command.size(); ++i) {
    const std::string& a = command[i];
    if ((a == "-o" || a == "--output-file") && i + 1 < command.size()) {
      out = command[++i];
    } else if (a.rfind("--output-file=", 0) == 0) {
      out = a.substr(std::strlen("--output-file="));
    }
  }
  return out;
}

bool is_elf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  char magic[4] = {};
  const ssize_t n = ::read(fd, magic, sizeof magic);
  ::close(fd);
  return n == 4 && std::memcmp(magic, "\x7f" "ELF", 4) == 0;
}

}  // namespace

int run_launch(const LaunchOptions& opts) {
  if (opts.command.empty()) {
    KG_LOG_ERROR("kernelgen launch: no command (usage: kernelgen launch -- <compiler> <args...>)");
    return kExitUsage;
  }
  std::vector<char*> argv;
  for (const std::string& a : opts.command) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0) {
    KG_LOG_ERROR("kernelgen launch: cannot run `" << opts.command[0] << "`: " << std::strerror(rc));
    return 127;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      KG_LOG_ERROR("kernelgen launch: waiting for `" << opts.command[0] << "`: " << std::strerror(errno));
      return kExitFailure;
    }
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : kExitFailure;
  if (code != 0) {
    return code;
  }
  const std::string out = output_file(opts.command);
  if (out.empty() || !is_elf(out)) {
    return 0;
  }
  auto n = zero_nvcc_temp_names_in_file(out);
  if (!n) {
    // The object is still correct, only not reproducible: say so and let the build go on.
    KG_LOG_WARN("kernelgen launch: " << out << " is not made reproducible: " << n.error().message);
  }
  return 0;
}

}  // namespace kg::cli

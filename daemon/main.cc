// kernelgend: the daemon that generates kernels and writes the cache (docs/design.md §6, docs/protocol.md).
// `kernelgen` starts it on a cache miss; people and service managers may start it themselves.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cache/local_cache.h"
#include "config/config.h"
#include "protocol/paths.h"
#include "emit_backend.h"
#include "generate/template_generator.h"
#include "jobs.h"
#include "loop/judge.h"
#include "loop/loop.h"
#include "loop/setup.h"
#include "protocol/request_check.h"
#include "server.h"
#include "test_backend.h"
#include "util/log.h"
#include "version.h"

extern char** environ;

namespace {

using namespace kg::daemon;
using namespace kg::protocol;

// Exit statuses (documented in --help).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitAlreadyRunning = 3;

// A log file past this size is moved to <log>.old when a daemon starts.
constexpr off_t kLogRotateBytes = off_t{4} << 20;
// How long the detaching parent waits for the daemon to listen.
constexpr int kReadyTimeoutMs = 30'000;

constexpr const char* kFooter =
    "\nWithout --foreground the daemon detaches (new session, stdio on /dev/null, log in the runtime\n"
    "directory) and the command returns once it listens. `kernelgen` starts it by itself when a\n"
    "kernel is not in the cache; `kernelgen daemon status|stop` shows and stops it. Started that\n"
    "way it gets a clean environment: PATH, HOME, USER, LOGNAME, LANG, LC_*, TMPDIR, XDG_*,\n"
    "CUDA_VISIBLE_DEVICES, KG_NVCC, CUDACXX, LD_LIBRARY_PATH and KERNELGEN_* (docs/protocol.md §6).\n"
    "\n"
    "Settings (`kernelgen config show`; the command line wins over them):\n"
    "  KERNELGEN_CACHE_DIR     cache directory (default $XDG_CACHE_HOME/kernelgen)\n"
    "  KERNELGEN_IDLE_TIMEOUT  seconds without work before exiting (default 600; 0 = never)\n"
    "  KERNELGEN_JOBS          generation jobs at once (default 0: the number of CPUs)\n"
    "  KERNELGEN_LOG           error | warn | info (default for the daemon) | debug\n"
    "  KERNELGEN_RUNTIME_DIR   the socket, lock and log (default $XDG_RUNTIME_DIR/kernelgen,\n"
    "                          else /tmp/kernelgen-<uid>)\n"
    "  KERNELGEN_CONFIG        the config file (default $XDG_CONFIG_HOME/kernelgen/kernelgen.conf)\n"
    "\n"
    "Testing only (the daemon's test suites; never set them otherwise):\n"
    "  KERNELGEN_TEST_JOB_DELAY_MS   every job sleeps this long before generating\n"
    "  KERNELGEN_TEST_JOB_GATE       every job waits until this file exists before generating\n"
    "  KERNELGEN_TEST_JOB_THROW      NAME: the job of the spec named NAME throws a std::runtime_error;\n"
    "                                NAME:int: it throws an int (a faulty job ends as an error for its\n"
    "                                waiters; every other job and the daemon go on)\n"
    "  KERNELGEN_TEST_HEARTBEAT_MS   progress heartbeat to waiting clients (default 5000)\n"
    "  KERNELGEN_TEST_CONNECTION_IDLE_MS  a connection without a request is closed after this\n"
    "                                (default 60000)\n"
    "  KERNELGEN_TEST_CACHE_MAX_MAP_BYTES  the cache cannot grow past this (a full disk)\n"
    "\n"
    "Exit status: 0 stopped normally (or, detaching, started); 1 failed (see the log);\n"
    "2 bad command line; 3 another kernelgend serves this configuration already.\n"
    "Protocol: docs/protocol.md.\n";

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return fallback;
  }
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || n < 0) {
    std::cerr << "kernelgend: ignoring " << name << "=" << v << " (not a non-negative integer)\n";
    return fallback;
  }
  return n;
}

// Opens the log (moving a large one aside) and makes it the process's stderr.
bool redirect_stderr_to_log(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && st.st_size > kLogRotateBytes) {
    ::rename(path.c_str(), (path + ".old").c_str());
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return false;
  }
  ::dup2(fd, STDERR_FILENO);  // dup2 clears close-on-exec on the copy
  ::close(fd);
  return true;
}

void redirect_to_dev_null(int target) {
  int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    ::dup2(fd, target);
    ::close(fd);
  }
}

// Detaches: the parent waits (bounded) for the child to report that it listens, then exits with
// its verdict; the child continues in a new session. Returns the write end of the readiness pipe
// (in the child), or exits (in the parent).
int detach(const std::string& log) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    std::cerr << "kernelgend: cannot create a pipe: " << std::strerror(errno) << "\n";
    std::exit(kExitFailure);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    std::cerr << "kernelgend: cannot fork: " << std::strerror(errno) << "\n";
    std::exit(kExitFailure);
  }
  if (pid > 0) {
    ::close(ready[1]);
    pollfd p{ready[0], POLLIN, 0};
    char verdict = 0;
    if (::poll(&p, 1, kReadyTimeoutMs) == 1 && ::read(ready[0], &verdict, 1) == 1) {
      if (verdict == 'r') {
        std::exit(kExitOk);
      }
      if (verdict == 'a') {
        std::exit(kExitAlreadyRunning);
      }
    }
    std::cerr << "kernelgend: failed to start; see " << log << "\n";
    std::exit(kExitFailure);
  }
  ::close(ready[0]);
  ::setsid();
  if (::chdir("/") != 0) {
    // Harmless: only relative paths would be affected, and every path here is absolute.
  }
  redirect_to_dev_null(STDIN_FILENO);
  redirect_to_dev_null(STDOUT_FILENO);
  if (!redirect_stderr_to_log(log)) {
    redirect_to_dev_null(STDERR_FILENO);
  }
  return ready[1];
}

void report_ready(int& fd, char verdict) {
  if (fd >= 0) {
    ssize_t ignored = ::write(fd, &verdict, 1);
    (void)ignored;
    ::close(fd);
    fd = -1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kernelgend: generates attention kernels for kernelgen and writes the kernel cache.",
               "kernelgend"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("kernelgend ") + kg::kVersion + " (generator " +
                                        kg::kGeneratorVersion + ", protocol " +
                                        std::to_string(kProtocolVersion) + ")");
  // Settings first: they are the defaults the command line overrides.
  auto settings = kg::config::Config::load(kg::config::environment_from(environ));
  if (!settings) {
    std::cerr << "kernelgend: " << settings.error().message << "\n";
    return kExitUsage;
  }
  std::string cache_dir = settings->cache_dir();
  // Whole seconds, rounded up: a fraction must not become 0 (never).
  int64_t idle_timeout_s = (settings->milliseconds("idle_timeout") + 999) / 1000;
  int64_t jobs = settings->number("jobs");
  if (jobs == 0) {
    jobs = std::max(1u, std::thread::hardware_concurrency());
  }
  int64_t max_connections = 1024;
  int64_t test_delay_ms = env_int("KERNELGEN_TEST_JOB_DELAY_MS", 0);
  bool foreground = false;
  std::string announce_version;
  app.add_option("--cache-dir", cache_dir,
                 "Cache directory (default: the cache_dir setting, KERNELGEN_CACHE_DIR)");
  app.add_option("--idle-timeout", idle_timeout_s,
                 "Exit after this many seconds without jobs or generate "
                 "requests; 0 = never")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--jobs", jobs, "Generation jobs at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-connections", max_connections,
                 "Connections served at once; a client beyond them is told the daemon is busy")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_flag("--foreground", foreground,
               "Stay attached and log to stderr (for service managers and debugging)");
  app.add_option("--test-job-delay-ms", test_delay_ms,
                 "Testing only: every job sleeps this long before generating, so tests overlap jobs")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--test-announce-version", announce_version,
                 "Testing only: claim this version in the greeting (to test replacement by clients)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  // A daemon logs at info unless configured otherwise.
  kg::log::set_level(settings->value("log").origin == kg::config::Origin::Default
                         ? kg::log::Level::Info
                         : kg::log::parse_level(settings->text("log")));

  DaemonConfig config;
  config.cache_dir = absolute_path(cache_dir);
  const std::string id = config_id(config);
  const std::string runtime = absolute_path(settings->runtime_dir());
  if (auto ok = ensure_private_dir(runtime); !ok) {
    std::cerr << "kernelgend: " << ok.error().message << "\n";
    return kExitFailure;
  }
  auto paths = daemon_paths(runtime, id);
  if (!paths) {
    std::cerr << "kernelgend: " << paths.error().message << "\n";
    return kExitFailure;
  }

  // Signals are taken through a signalfd; block them before any thread exists so that every
  // thread inherits the mask.
  ::signal(SIGPIPE, SIG_IGN);
  // A descriptor per connection (up to 1024 at once) besides the cache's: lift the soft limit.
  rlimit files;
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);

  int ready_fd = -1;
  if (!foreground) {
    ready_fd = detach(paths->log);
    kg::log::use_log_file_format("kernelgend");
  }
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    KG_LOG_ERROR("cannot create a signalfd: " << std::strerror(errno));
    report_ready(ready_fd, 'f');
    return kExitFailure;
  }

  kg::cache::LocalCache::Options cache_options;
  if (int64_t cap = env_int("KERNELGEN_TEST_CACHE_MAX_MAP_BYTES", 0); cap > 0) {
    // Testing only: a cache that cannot grow past `cap` bytes behaves like a full disk.
    cache_options.max_map_size = static_cast<uint64_t>(cap);
    cache_options.initial_map_size = std::min<uint64_t>(cache_options.initial_map_size, cap);
  }
  // The closed loop, when an LLM endpoint is configured: one generator for every job, its model
  // calls bounded by llm_jobs over all of them.
  std::shared_ptr<kg::generate::Generator> loop;
  std::string no_loop;
  if (auto endpoint = kg::loop::endpoint_from_config(*settings)) {
    kg::loop::LoopOptions loop_options = kg::loop::loop_options(*settings);
    if (std::getenv("KERNELGEN_TEST_LOOP_NO_RUN") != nullptr) {
      // Testing only: the loop's model calls, parsing and compiles on a machine without a GPU.
      loop_options.run = false;
    }
    if (int64_t calls = settings->number("llm_jobs"); calls > 0) {
      loop_options.limiter = std::make_shared<kg::loop::CallLimiter>(static_cast<int>(std::min<int64_t>(calls, 4096)));
    }
    KG_LOG_INFO("the closed loop asks " << (*endpoint)->describe() << ", " << loop_options.samples
                                        << " samples per round, budget " << loop_options.budget_s << " s");
    loop = std::make_shared<kg::loop::LoopGenerator>(*endpoint, kg::loop::verifier_judges(kg::verify::verifier_setup(*settings)),
                                                     std::make_shared<kg::generate::TemplateGenerator>(), loop_options);
  } else {
    no_loop = endpoint.error().message;
    if (endpoint.error().kind != kg::Failure::Kind::NotFound) {
      KG_LOG_ERROR("the closed loop is off: " << no_loop);
    }
  }
  auto tiers = kg::storage::tier_setup(*settings);
  if (!tiers) {
    KG_LOG_ERROR(tiers.error().message);
    report_ready(ready_fd, 'f');
    return kExitFailure;
  }
  const std::string storage_line = kg::storage::describe_setup(config.cache_dir, *tiers);
  EmitBackend emit_backend(config.cache_dir, cache_options, kg::verify::verifier_setup(*settings), nullptr, loop,
                           no_loop, std::move(*tiers));
  emit_backend.set_max_size(kg::config::parse_size(settings->text("max_size")).value_or(0));
  TestKnobs knobs;
  knobs.delay_ms = static_cast<int>(std::min<int64_t>(test_delay_ms, 3'600'000));
  if (const char* gate = std::getenv("KERNELGEN_TEST_JOB_GATE")) {
    knobs.gate_file = gate;
  }
  if (const char* name = std::getenv("KERNELGEN_TEST_JOB_THROW")) {
    knobs.throw_for = name;
  }
  TestKnobBackend knob_backend(emit_backend, knobs);
  JobBackend& backend = knobs.any() ? static_cast<JobBackend&>(knob_backend) : emit_backend;
  JobRunner::Options runner_options;
  runner_options.jobs = static_cast<int>(jobs);
  JobRunner runner(backend, runner_options);
  ServerOptions options;
  options.config = config;
  options.config_id = id;
  options.paths = *paths;
  options.log = foreground ? "" : paths->log;
  options.storage = storage_line;
  options.idle_timeout_s = idle_timeout_s;
  options.announce_version = announce_version;
  options.max_connections = static_cast<int>(max_connections);
  options.heartbeat_ms = static_cast<int>(std::clamp<int64_t>(env_int("KERNELGEN_TEST_HEARTBEAT_MS", 5000), 1, 600'000));
  options.connection_idle_ms =
      static_cast<int>(std::clamp<int64_t>(env_int("KERNELGEN_TEST_CONNECTION_IDLE_MS", 60'000), 1, 3'600'000));
  options.cache_gone = [&emit_backend] { return emit_backend.cache_gone(); };
  Server server(options, runner);
  if (auto started = server.start(); !started) {
    const bool running = started.error().kind == kg::Failure::Kind::NotFound;
    if (running) {
      KG_LOG_INFO(started.error().message << "; exiting");
    } else {
      KG_LOG_ERROR("cannot start: " << started.error().message);
    }
    if (foreground) {
      std::cerr << "kernelgend: " << started.error().message << "\n";
    }
    report_ready(ready_fd, running ? 'a' : 'f');
    return running ? kExitAlreadyRunning : kExitFailure;
  }
  if (knobs.any()) {
    KG_LOG_WARN("testing knobs:" << kg::printable(knobs.describe()));
  }
  report_ready(ready_fd, 'r');
  if (!server.run(signal_fd)) {
    ::_exit(kExitOk);  // connection threads still hold the server; do not destroy it under them
  }
  return kExitOk;
}

// kernelgen daemon start|stop|status
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <variant>

#include "cache/local_cache.h"
#include "commands.h"
#include "daemon_client.h"
#include "util/log.h"

namespace kg::cli {

namespace {

// `kernelgen daemon stop` waits this long for the daemon to finish its jobs and exit.
constexpr auto kStopWait = std::chrono::seconds(60);

// Sends `request` and returns the response of type T. Errors say what came instead.
template <typename T>
Expected<T, Failure> call(DaemonConnection& conn, const protocol::Request& request) {
  KG_TRY(conn.send(request));
  Incoming in = conn.receive(10'000);
  if (in.kind != Incoming::Kind::Message) {
    return fail("no answer from kernelgend (pid " + std::to_string(conn.hello().pid) +
                "): " + (in.kind == Incoming::Kind::Timeout ? std::string("timed out") : in.error));
  }
  if (auto* t = std::get_if<T>(&in.response)) {
    return *t;
  }
  if (auto* e = std::get_if<protocol::Error>(&in.response)) {
    return fail(std::string("kernelgend answered ") + protocol::error_code_name(e->code) + ": " + e->message);
  }
  return fail("kernelgend answered with an unexpected message");
}

// A zombie counts as gone: the daemon's parent (init, or a container's first process) may be slow
// to reap it, or never do so.
bool process_alive(int64_t pid) {
  if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM)) {
    return false;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

int status(const DaemonTarget& target, const DaemonOptions& opts) {
  auto conn = connect_daemon(target);
  if (!conn) {
    if (conn.error().kind == Failure::Kind::NotFound) {
      if (opts.json) {
        std::cout << nlohmann::json{{"running", false}, {"socket", target.paths.socket}}.dump(2) << "\n";
      } else {
        std::cout << "no kernelgend is running for the cache " << target.config.cache_dir << " (socket "
                  << target.paths.socket << ")\n";
      }
      return kExitFailure;
    }
    KG_LOG_ERROR(conn.error().message);
    return kExitFailure;
  }
  if (!compatible(conn->hello(), target)) {
    std::cout << "a kernelgend of another version is running: " << conn->hello().version << " (protocol "
              << conn->hello().protocol << ", pid " << conn->hello().pid
              << "); the next generation request replaces it\n";
    return kExitOk;
  }
  auto st = call<protocol::Status>(*conn, protocol::StatusRequest{});
  auto stats = st ? call<protocol::Stats>(*conn, protocol::StatsRequest{})
                  : Expected<protocol::Stats, Failure>(protocol::Stats{});
  if (!st || !stats) {
    KG_LOG_ERROR((!st ? st.error() : stats.error()).message);
    return kExitFailure;
  }
  if (opts.json) {
    nlohmann::json j = nlohmann::json::parse(protocol::encode(*st));
    j.erase("type");
    nlohmann::json s = nlohmann::json::parse(protocol::encode(*stats));
    s.erase("type");
    j["running"] = true;
    j["stats"] = s;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "kernelgend " << st->version << " running, pid " << st->pid << ", up "
            << static_cast<int64_t>(st->uptime_s) << " s" << (st->draining ? ", shutting down" : "") << "\n"
            << "  cache      " << st->cache_dir << "\n"
            << "  socket     " << st->socket << "\n"
            << "  log        " << (st->log.empty() ? "(stderr)" : st->log) << "\n"
            << "  storage    " << (st->storage.empty() ? "(not reported: an older kernelgend)" : st->storage) << "\n"
            << "  jobs       " << st->active_jobs << " running or queued, " << st->jobs_limit << " at once\n"
            << "  idle exit  "
            << (st->idle_timeout_s == 0 ? std::string("never") : std::to_string(st->idle_timeout_s) + " s")
            << "\n"
            << "  requests   " << stats->generate_requests << " generate (" << stats->cache_hits
            << " cache hits, " << stats->generations << " generations, " << stats->joins << " joined, "
            << stats->failures << " failed), " << stats->requests << " in all\n";
  return kExitOk;
}

int start(const DaemonTarget& target) {
  auto conn = connect_or_start_daemon(target);
  if (!conn) {
    KG_LOG_ERROR("cannot start the kernelgen daemon: " << conn.error().message
                                                       << " (rerun with KERNELGEN_LOG=debug for details)");
    return kExitFailure;
  }
  std::cout << "kernelgend " << conn->hello().version << " running, pid " << conn->hello().pid << ", socket "
            << target.paths.socket << ", log " << target.paths.log << "\n";
  return kExitOk;
}

int stop(const DaemonTarget& target) {
  auto conn = connect_daemon(target);
  if (!conn) {
    if (conn.error().kind == Failure::Kind::NotFound) {
      std::cout << "no kernelgend is running for the cache " << target.config.cache_dir << "\n";
      return kExitOk;
    }
    KG_LOG_ERROR(conn.error().message);
    return kExitFailure;
  }
  const int64_t pid = conn->hello().pid;
  auto ack = call<protocol::ShutdownAck>(*conn, protocol::ShutdownRequest{});
  if (!ack) {
    KG_LOG_ERROR(ack.error().message);
    return kExitFailure;
  }
  if (ack->active_jobs > 0) {
    std::cout << "kernelgend (pid " << pid << ") finishes " << ack->active_jobs
              << " job(s) before it exits\n";
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopWait;
  while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (process_alive(pid)) {
    std::cout << "kernelgend (pid " << pid << ") is still finishing its jobs; it exits when they are done\n";
    return kExitOk;
  }
  std::cout << "kernelgend (pid " << pid << ") stopped\n";
  return kExitOk;
}

}  // namespace

int run_daemon(const GlobalOptions& global, const DaemonOptions& opts) {
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)
  auto target = daemon_target(dir, *global.config);
  if (!target) {
    KG_LOG_ERROR(target.error().message);
    return kExitFailure;
  }
  if (opts.action == "start") {
    return start(*target);
  }
  if (opts.action == "stop") {
    return stop(*target);
  }
  return status(*target, opts);
}

}  // namespace kg::cli

// kg_fake_llm (fake_openai_server.cc) run as a child process for a test: the script written into a
// test's directory, the server started on a free loopback port, stopped with SIGTERM at the end.
// Unit tests only (tests/CMakeLists.txt puts tests/llm on their include path).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace kg::testing {

// The server's path: $KG_FAKE_LLM, else the one this build made.
inline std::string fake_llm_path() {
  const char* env = std::getenv("KG_FAKE_LLM");
  return env != nullptr && *env != '\0' ? env : KG_FAKE_LLM;
}

class FakeLlm {
 public:
  // Writes `script` to DIR/NAME.json (its "log" set to DIR/NAME.log unless given) and starts the
  // server; ok() says whether it came up (with its port) within 5 s.
  FakeLlm(const std::string& dir, const std::string& name, nlohmann::json script,
          std::vector<std::string> extra_args = {}) {
    m_script_path = dir + "/" + name + ".json";
    m_port_file = dir + "/" + name + ".port";
    if (!script.contains("log")) {
      script["log"] = dir + "/" + name + ".log";
    }
    m_log_path = script["log"].get<std::string>();
    std::ofstream(m_script_path) << script.dump(2);
    std::vector<std::string> args = {fake_llm_path(), "--script", m_script_path, "--port-file", m_port_file};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    m_pid = ::fork();
    if (m_pid == 0) {
      std::vector<char*> argv;
      for (std::string& a : args) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(m_port_file);
      if (in >> m_port && m_port > 0) {
        return;
      }
      int status = 0;
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~FakeLlm() { stop(); }
  FakeLlm(const FakeLlm&) = delete;
  FakeLlm& operator=(const FakeLlm&) = delete;

  // SIGTERM and wait; returns the exit status as waitpid gave it (-1 when not running).
  int stop() {
    if (m_pid <= 0) {
      return -1;
    }
    ::kill(m_pid, SIGTERM);
    int status = 0;
    ::waitpid(m_pid, &status, 0);
    m_pid = -1;
    return status;
  }
  // Waits for the server to exit by itself (--exit-after), at most `seconds`; its status, or -1.
  int wait_exit(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (m_pid > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

  bool ok() const { return m_port > 0; }
  int port() const { return m_port; }
  // The endpoint's base URL: http://127.0.0.1:PORT/v1
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/v1"; }
  // The requests logged so far, one object each.
  std::vector<nlohmann::json> log() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(m_log_path);
    for (std::string line; std::getline(in, line);) {
      out.push_back(nlohmann::json::parse(line, nullptr, false));
    }
    return out;
  }
  // Waits until at least `n` requests are logged (at most `seconds`); whether they were.
  bool wait_for_requests(size_t n, double seconds) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (log().size() >= n) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

 private:
  std::string m_script_path;
  std::string m_port_file;
  std::string m_log_path;
  pid_t m_pid = -1;
  int m_port = 0;
};

}  // namespace kg::testing

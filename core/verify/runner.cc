#include "verify/runner.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "util/file.h"

namespace kg::verify {

namespace fs = std::filesystem;

std::string locate_runner() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return "kg_verify_runner";
  }
  return (self.parent_path() / "kg_verify_runner").string();
}

std::vector<std::string> runner_environment(const std::string& dir, const config::Environment& from) {
  std::vector<std::string> env;
  for (const char* name : {"PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
                           "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"}) {
    if (auto v = config::lookup(from, name)) {
      env.push_back(std::string(name) + "=" + *v);
    }
  }
  env.push_back("HOME=" + dir);
  env.push_back("TMPDIR=" + dir);
  return env;
}

std::string random_nonce() {
  unsigned char b[16];
  std::ifstream in("/dev/urandom", std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(b), sizeof b)) {
    std::random_device rd;
    for (auto& x : b) {
      x = static_cast<unsigned char>(rd());
    }
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char x : b) {
    s += hex[x >> 4];
    s += hex[x & 15];
  }
  return s;
}

SandboxRunner::SandboxRunner(std::string runner, std::string work_dir, config::Environment env)
    : m_runner(runner.empty() ? locate_runner() : std::move(runner)),
      m_work_dir(std::move(work_dir)),
      m_env(std::move(env)) {}

Expected<RunOutcome, Failure> SandboxRunner::run(const RunnerRequest& request, const RunLimits& limits) {
  if (::access(m_runner.c_str(), X_OK) != 0) {
    return fail("verifier runner " + m_runner + " is not executable (" + std::strerror(errno) +
                "); build kg_verify_runner or set KERNELGEN_RUNNER");
  }
  KG_TRY(make_dirs(m_work_dir + "/run", 0700));
  std::string templ = m_work_dir + "/run/XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return fail("cannot create a run directory under " + m_work_dir + "/run: " + std::strerror(errno));
  }
  RunOutcome out;
  out.dir = templ;
  // The request (with its nonce) goes in on stdin and the result comes back on stdout: neither is
  // ever a file the candidate host could read or write.
  const std::string request_json = request_to_json(request);
  if (limits.keep_dir) {
    KG_TRY(write_file_atomic(out.dir + "/request.json", request_json));
  }
  ProcessOptions o;
  o.argv = {m_runner, "--request", "-", "--result", "-"};
  o.cwd = out.dir;
  o.env = runner_environment(out.dir, m_env);
  o.wall_limit_s = limits.wall_limit_s;
  o.memory_limit_bytes = limits.memory_limit_bytes;
  o.private_network = limits.private_network;
  o.output_limit = 16 * 1024 * 1024;
  o.stdin_data = request_json;
  auto p = run_process(o);
  if (!p) {
    std::error_code ec;
    fs::remove_all(out.dir, ec);
    return unexpected(p.error());
  }
  out.process = std::move(*p);
  if (out.process.exited_ok()) {
    if (out.process.out_dropped > 0) {
      out.result_error = "the result exceeds " + std::to_string(o.output_limit) + " bytes";
    } else {
      auto parsed = out.process.out.empty() ? Expected<RunnerResult, Failure>(fail("no result on stdout"))
                                            : parse_result(out.process.out, request.nonce);
      if (parsed) {
        out.result = std::move(*parsed);
      } else {
        out.result_error = parsed.error().message;
      }
    }
    if (limits.keep_dir) {
      (void)write_file_atomic(out.dir + "/result.json", out.process.out);
    }
  }
  if (!limits.keep_dir) {
    std::error_code ec;
    fs::remove_all(out.dir, ec);
    out.dir.clear();
  }
  return out;
}

Expected<bool, Failure> SandboxRunner::probe(const RunLimits& limits) {
  if (::access(m_runner.c_str(), X_OK) != 0) {
    return fail("verifier runner " + m_runner + " is not executable (" + std::strerror(errno) +
                "); build kg_verify_runner or set KERNELGEN_RUNNER");
  }
  ProcessOptions o;
  o.argv = {m_runner, "--probe"};
  o.env = runner_environment("/tmp", m_env);
  o.wall_limit_s = std::min(limits.wall_limit_s, 60.0);
  o.memory_limit_bytes = limits.memory_limit_bytes;
  o.private_network = limits.private_network;
  auto p = run_process(o);
  if (!p) {
    return unexpected(p.error());
  }
  if (p->exit_code == kRunnerExitNoDevice && p->signal == 0) {
    return false;
  }
  if (!p->exited_ok()) {
    return fail("`" + m_runner + " --probe` failed (" +
                (p->signal ? "signal " + std::to_string(p->signal) : "exit " + std::to_string(p->exit_code)) +
                "): " + last_lines(p->err, 3));
  }
  return true;
}

std::vector<Finding> outcome_findings(const RunOutcome& o, const RunLimits& limits) {
  std::vector<Finding> out;
  if (o.result || o.no_device()) {
    return out;
  }
  const ProcessResult& p = o.process;
  // The trial the runner announced last ("kg_verify_runner: trial NAME: SHAPE").
  std::string trial, shape, context;
  {
    const std::string tag = "kg_verify_runner: trial ";
    const size_t at = p.err.rfind(tag);
    if (at != std::string::npos) {
      size_t e = p.err.find('\n', at);
      const std::string line = p.err.substr(at + tag.size(), (e == std::string::npos ? p.err.size() : e) - at - tag.size());
      const size_t colon = line.find(": ");
      trial = line.substr(0, colon);
      shape = colon == std::string::npos ? "" : line.substr(colon + 2);
    }
    context = last_lines(p.err, 6);
  }
  Finding f;
  f.stage = kStageRun;
  f.trial = trial;
  f.shape = shape;
  const std::string where = trial.empty() ? "" : " during trial " + trial;
  if (p.timed_out) {
    f.kind = FindingKind::Timeout;
    f.message = "the runner did not finish within " + std::to_string(static_cast<int>(limits.wall_limit_s)) +
                " s" + where + " and was killed (a kernel that never terminates, or far too slow)";
  } else if (p.memory_exceeded) {
    f.kind = FindingKind::MemoryLimit;
    f.message = "the runner's resident memory exceeded " + std::to_string(limits.memory_limit_bytes >> 20) +
                " MiB" + where + " and it was killed";
  } else if (p.signal != 0) {
    f.kind = FindingKind::Crash;
    f.message = std::string("the runner was killed by signal ") + std::to_string(p.signal) + " (" +
                strsignal(p.signal) + ")" + where + " (the candidate runs in a process of its own, so this is the "
                "judge failing; it never passes)";
  } else if (p.exit_code != 0) {
    f.kind = FindingKind::NoResult;
    f.message = "the runner exited with status " + std::to_string(p.exit_code) + where +
                " without a result";
  } else if (!o.result_error.empty() && o.result_error.rfind("no result", 0) == 0) {
    f.kind = FindingKind::NoResult;
    f.message = "the runner exited with status 0" + where + " but wrote no result";
  } else {
    f.kind = FindingKind::BadResult;
    f.message = "the runner's result is unusable" + where + ": " + o.result_error;
  }
  if (!context.empty()) {
    f.message += "\nlast runner output:\n" + context;
  }
  out.push_back(std::move(f));
  return out;
}

}  // namespace kg::verify

#include "verify/verify.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>

#include "cache/local_cache.h"
#include "codegen/codegen.h"
#include "spec/key.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/log.h"
#include "kernelgen/attention_abi.h"
#include "verify/abi_header_text.h"
#include "verify/host_check.h"
#include "verify/static_check.h"
#include "version.h"

namespace kg::verify {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Bumped when the nvcc command lines or the host checks (host_check.h: an object in the cache
// passed the checks of this version) change; part of the compiled-object digest.
constexpr const char* kCompileFlagsVersion = "nvcc-flags-2;host-check-1";

// The object cache directory: created 0700; one owned by someone else, or writable by group or
// others, is refused (its objects could have been replaced); a looser one of ours is tightened.
Expected<void, Failure> check_object_dir(const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    return fail(os_error("cannot examine", dir));
  }
  const std::string refuse = "refusing the compiled-object cache " + dir + ": ";
  const std::string advice = " (remove it, or set KERNELGEN_VERIFY_DIR to a directory of your own)";
  if (!S_ISDIR(st.st_mode)) {
    return fail(refuse + "it is not a directory" + advice);
  }
  KG_TRY(check_owner_and_mode(st.st_mode, st.st_uid, 022, "writable by group or others", refuse, advice));
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    return fail(os_error("cannot make 0700", dir));
  }
  return {};
}

uint64_t fresh_seed() {
  std::random_device rd;
  uint64_t s = 0;
  while (s == 0) {
    s = (uint64_t(rd()) << 32) ^ rd();
  }
  return s;
}

StageResult stage(const char* name, StageStatus status, double seconds = 0, std::string note = "") {
  return StageResult{name, status, seconds, std::move(note)};
}

bool rejects_in(const std::vector<Finding>& fs, const char* stage_name) {
  for (const Finding& f : fs) {
    if (!f.warning && f.stage == stage_name) {
      return true;
    }
  }
  return false;
}

void finish(VerifyReport& r, Clock::time_point t0) {
  if (!r.verdict) {
    r.verdict = r.first_rejection() ? Verdict::Rejected : Verdict::Pass;
  }
  r.total_seconds = since(t0);
}

}  // namespace

VerifierSetup verifier_setup(const config::Config& config) {
  VerifierSetup s;
  s.env = config.environment();
  s.nvcc = config.text("nvcc").empty() ? find_nvcc(s.env) : config.text("nvcc");
  s.runner = config.text("runner").empty() ? locate_runner() : config.text("runner");
  s.work_dir = config.text("verify_dir").empty() ? config.cache_dir() + "/verify" : config.text("verify_dir");
  s.private_network = !config.flag("verify_no_netns");
  return s;
}

Verifier::Verifier(Compiler& compiler, Runner& runner, VerifyOptions options)
    : m_compiler(compiler), m_runner(runner), m_options(std::move(options)) {}

Expected<std::string, Failure> Verifier::compile_cached(const std::string& source, CompileResult& result,
                                                        bool& cached) {
  const std::string& work = m_options.work_dir;
  KG_TRY(make_dirs(work + "/so", 0700));
  KG_TRY(check_object_dir(work + "/so"));
  KG_TRY(make_dirs(work + "/include/kernelgen", 0700));
  auto wrote = write_file_if_changed(work + "/include/kernelgen/attention_abi.h", kAbiHeaderText);
  if (!wrote) {
    return unexpected(wrote.error());
  }
  // An object compiled without the host checks (tests of the run-time defences) never shares a
  // name with a checked one.
  const std::string digest = xxh3_128_hex_fields({"kg-verify-so", kCompileFlagsVersion, m_options.arch,
                                                  m_compiler.version(), kAbiHeaderText, source,
                                                  m_options.skip_source_checks ? "unchecked" : "checked"});
  const std::string so = work + "/so/" + digest + ".so";
  const std::string sum = so + ".xxh3";  // XXH3-128 of the .so's bytes, written before the .so appears
  const std::string log = work + "/so/" + digest + ".log";
  std::error_code ec;
  std::string note;
  if (::access(so.c_str(), F_OK) == 0) {
    // Trusted only when its bytes still have the digest written when it was made (and checked).
    auto want = read_file(sum);
    auto got = object_file_digest(so);
    const std::string want_text = want ? want->substr(0, want->find_first_of("\r\n")) : "";
    if (want && got && is_digest(want_text) && want_text == *got) {
      cached = true;
      auto text = read_file(log);
      result.ok = true;
      result.output = text ? *text : "";
      result.object_digest = *got;
      result.note = "cached";
      return so;
    }
    note = !want ? "the cached object had no digest beside it; recompiled"
                 : !got ? "the cached object could not be read; recompiled"
                        : "the cached object did not match its digest; recompiled";
    KG_LOG_WARN(so << ": " << note);
    std::filesystem::remove(so, ec);
    std::filesystem::remove(sum, ec);
  }
  cached = false;
  // Unique names per process and call: several verifiers may compile the same text at once.
  const std::string tmp = work + "/so/" + digest + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::random_device{}());
  KG_TRY(write_file_atomic(tmp + ".cu", source));
  CompileJob job{tmp + ".cu", tmp + ".so", m_options.arch, work + "/include", nullptr};
  if (!m_options.skip_source_checks) {
    job.inspect = [](const HostArtifacts& host) {
      return host_check(host.translation_path, host.source_path, host.object_path, host.env);
    };
  }
  auto r = m_compiler.compile(job);
  std::filesystem::remove(tmp + ".cu", ec);
  if (!r) {
    std::filesystem::remove(tmp + ".so", ec);
    return unexpected(r.error());
  }
  result = std::move(*r);
  result.note = note;
  if (!result.ok) {
    std::filesystem::remove(tmp + ".so", ec);
    return so;  // not made; the caller looks at result.ok
  }
  auto made = object_file_digest(tmp + ".so");
  if (!made) {
    std::filesystem::remove(tmp + ".so", ec);
    return unexpected(made.error());
  }
  result.object_digest = *made;
  KG_TRY(write_file_atomic(log, result.output));
  KG_TRY(write_file_atomic(sum, *made + "\n"));
  std::filesystem::rename(tmp + ".so", so, ec);
  if (ec) {
    return fail("cannot move the compiled kernel to " + so + ": " + ec.message());
  }
  return so;
}

Expected<VerifyReport, Failure> Verifier::verify(const spec::Spec& spec, const std::string& spec_yaml,
                                                 const std::string& source) {
  const auto t0 = Clock::now();
  VerifyReport r;
  r.spec_name = spec.name;
  r.spec_file = m_options.spec_file;
  r.arch = m_options.arch;
  r.kernel_digest = xxh3_128_hex(source);
  r.seed = m_options.seed != 0 ? m_options.seed : fresh_seed();
  r.kernelgen_version = kVersion;
  r.verifier_version = kVerifierVersion;
  r.abi_version = static_cast<int>(KG_ABI_VERSION);

  // ---- static ----
  auto ts = Clock::now();
  std::vector<Finding> found = m_options.skip_source_checks ? std::vector<Finding>{} : static_check(source, spec.name);
  r.stages.push_back(stage(kStageStatic, found.empty() ? StageStatus::Pass : StageStatus::Fail, since(ts),
                           m_options.skip_source_checks ? "skipped (run-time defences under test)" : ""));
  if (!found.empty()) {
    r.findings = std::move(found);
    for (const char* s : {kStageCompile, kStageRun, kStageCorrectness, kStageTiming}) {
      r.stages.push_back(stage(s, StageStatus::Skipped, 0, "static checks failed"));
    }
    finish(r, t0);
    return r;
  }

  // ---- compile (candidate, then the reference kernel for the same spec) ----
  ts = Clock::now();
  r.nvcc_version = m_compiler.version();
  CompileResult cr;
  bool cached = false;
  auto so = compile_cached(source, cr, cached);
  if (!so) {
    return unexpected(so.error());
  }
  r.compile_seconds = cr.seconds;
  r.compile_cached = cached;
  r.compiler_output = trim_output(cr.output, kCompilerOutputLimit);
  r.ptxas = parse_ptxas_report(cr.output);
  if (!cr.findings.empty()) {
    // The host checks refused the object (host_check.h): it was never linked.
    for (Finding& f : cr.findings) {
      r.findings.push_back(std::move(f));
    }
  } else if (!cr.ok) {
    Finding f;
    f.stage = kStageCompile;
    const bool undefined = cr.output.find("undefined reference") != std::string::npos ||
                           cr.output.find("undefined symbol") != std::string::npos;
    f.kind = undefined ? FindingKind::UndefinedSymbol : FindingKind::CompileError;
    std::string undefined_lines;
    {
      std::istringstream lines(cr.output);
      std::string line;
      for (int n = 0; n < 8 && std::getline(lines, line);) {
        if (line.find("undefined") != std::string::npos) {
          undefined_lines += line + "\n";
          ++n;
        }
      }
    }
    f.message = undefined ? "the shared object references symbols outside the CUDA runtime (linked with "
                            "--no-undefined):\n" + undefined_lines
                          : "nvcc failed:\n" + trim_output(cr.output, 3000);
    r.findings.push_back(std::move(f));
  } else {
    auto symbols = exported_symbols(*so);
    const std::string entry = entry_symbol(spec.name);
    if (!symbols) {
      return unexpected(symbols.error());
    }
    if (std::find(symbols->begin(), symbols->end(), entry) == symbols->end()) {
      Finding f;
      f.stage = kStageCompile;
      f.kind = FindingKind::MissingEntry;
      f.message = "the compiled shared object does not export `" + entry +
                  "` (missing extern \"C\", a typo, or hidden visibility)";
      r.findings.push_back(std::move(f));
    }
  }
  const bool compile_ok = !rejects_in(r.findings, kStageCompile);
  r.stages.push_back(stage(kStageCompile, compile_ok ? StageStatus::Pass : StageStatus::Fail, since(ts), cr.note));
  if (!compile_ok) {
    for (const char* s : {kStageRun, kStageCorrectness, kStageTiming}) {
      r.stages.push_back(stage(s, StageStatus::Skipped, 0, "compilation failed"));
    }
    finish(r, t0);
    return r;
  }
  if (!m_options.run) {
    for (const char* s : {kStageRun, kStageCorrectness, kStageTiming}) {
      r.stages.push_back(stage(s, StageStatus::Skipped, 0, "not requested (static and compile only)"));
    }
    r.verdict = Verdict::Incomplete;
    finish(r, t0);
    return r;
  }

  const std::string key = spec::spec_key(spec, m_options.arch);
  const std::string ref_source = codegen::emit_reference_kernel(spec, codegen::Provenance{spec.name, key});
  CompileResult ref_cr;
  bool ref_cached = false;
  auto ref_so = compile_cached(ref_source, ref_cr, ref_cached);
  if (!ref_so) {
    return unexpected(ref_so.error());
  }
  if (!ref_cr.ok) {
    std::string why;
    for (const Finding& f : ref_cr.findings) {
      why += f.message + "\n";
    }
    return fail("the fp32 reference kernel for " + spec.name + " does not compile (a kernelgen bug):\n" + why +
                last_lines(ref_cr.output, 20));
  }

  // ---- run (correctness + timing in the sandboxed runner) ----
  ts = Clock::now();
  RunnerRequest req;
  req.nonce = random_nonce();
  req.spec_name = spec.name;
  req.spec_yaml = spec_yaml;
  req.candidate_library = std::filesystem::absolute(*so).string();
  req.candidate_symbol = entry_symbol(spec.name);
  req.reference_library = std::filesystem::absolute(*ref_so).string();
  req.reference_symbol = "kg_" + spec.name + "_reference_forward";
  // The judge loads only bytes that match what was compiled (or checked in the cache) here.
  req.candidate_digest = cr.object_digest;
  req.reference_digest = ref_cr.object_digest;
  req.seed = r.seed;
  req.settings = m_options.settings;
  auto outcome = m_runner.run(req, m_options.limits);
  if (!outcome) {
    return unexpected(outcome.error());
  }
  const ProcessResult& p = outcome->process;
  SandboxFacts& sb = r.sandbox;
  sb.ran = true;
  sb.runner = std::string();  // filled by callers that know it (SandboxRunner::path)
  sb.clean_environment = true;
  sb.private_network = p.private_network;
  sb.network_note = m_options.limits.private_network ? p.network_note : "not requested";
  sb.wall_limit_s = m_options.limits.wall_limit_s;
  sb.memory_limit_bytes = m_options.limits.memory_limit_bytes;
  sb.memory_limit_method = m_options.limits.memory_limit_bytes ? "rss-watchdog" : "none";
  sb.peak_rss_bytes = p.peak_rss_bytes;
  sb.exit_code = p.signal ? -1 : p.exit_code;
  sb.signal = p.signal;
  sb.timed_out = p.timed_out;
  sb.seconds = p.seconds;
  sb.stderr_tail = last_lines(p.err, 20);
  if (outcome->no_device()) {
    for (const char* s : {kStageRun, kStageCorrectness, kStageTiming}) {
      r.stages.push_back(stage(s, StageStatus::Skipped, 0, "no CUDA device"));
    }
    r.verdict = Verdict::Incomplete;
    finish(r, t0);
    return r;
  }
  for (Finding& f : outcome_findings(*outcome, m_options.limits)) {
    r.findings.push_back(std::move(f));
  }
  if (outcome->result) {
    RunnerResult& res = *outcome->result;
    r.device = res.device;
    r.trials = std::move(res.trials);
    r.timing = res.timing;
    sb.startup_seconds = res.startup_seconds;
    sb.candidate_host = res.host;
    for (Finding& f : res.findings) {
      r.findings.push_back(std::move(f));
    }
  }
  const double run_s = since(ts);
  const bool run_ok = !rejects_in(r.findings, kStageRun);
  r.stages.push_back(stage(kStageRun, run_ok ? StageStatus::Pass : StageStatus::Fail, run_s));
  const bool correct = !rejects_in(r.findings, kStageCorrectness);
  const double correctness_s = outcome->result ? outcome->result->correctness_seconds : 0;
  const double timing_s = outcome->result ? outcome->result->timing_seconds : 0;
  r.stages.push_back(stage(kStageCorrectness, !run_ok ? StageStatus::Skipped : correct ? StageStatus::Pass : StageStatus::Fail, correctness_s));
  const bool timed_ok = !rejects_in(r.findings, kStageTiming);
  r.stages.push_back(stage(kStageTiming,
                           !timed_ok ? StageStatus::Fail : (r.timing.measured ? StageStatus::Pass : StageStatus::Skipped), timing_s,
                           r.timing.measured || !timed_ok ? "" : (run_ok && correct ? "not requested" : "earlier stage failed")));
  finish(r, t0);
  return r;
}

Expected<VerifyReport, Failure> verify_kernel(const spec::Spec& spec, const std::string& spec_yaml,
                                              const std::string& source, const VerifyOptions& options,
                                              const VerifierSetup& setup) {
  NvccCompiler compiler(setup.nvcc, setup.env);
  VerifyOptions opt = options;
  if (opt.work_dir.empty()) {
    opt.work_dir = setup.work_dir;
  }
  if (!setup.private_network) {
    opt.limits.private_network = false;
  }
  SandboxRunner runner(setup.runner, opt.work_dir, setup.env);
  Verifier verifier(compiler, runner, opt);
  auto r = verifier.verify(spec, spec_yaml, source);
  if (r && r->sandbox.ran) {
    r->sandbox.runner = runner.path();
  }
  return r;
}

}  // namespace kg::verify

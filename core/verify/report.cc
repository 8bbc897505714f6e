#include "verify/report.h"

#include <cmath>
#include <sstream>

namespace kg::verify {

namespace {

// JSON has no Inf/NaN: they are written as strings ("inf", "-inf", "nan").
nlohmann::json number(double x) {
  if (std::isnan(x)) {
    return "nan";
  }
  if (std::isinf(x)) {
    return x > 0 ? "inf" : "-inf";
  }
  return x;
}

double read_number(const nlohmann::json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "inf") {
      return INFINITY;
    }
    if (s == "-inf") {
      return -INFINITY;
    }
    return NAN;
  }
  return j.get<double>();
}

template <typename T>
void get_if(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) {
    out = it->get<T>();
  }
}

void get_number(const nlohmann::json& j, const char* key, double& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) {
    out = read_number(*it);
  }
}

}  // namespace

namespace {

struct KindName {
  FindingKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {FindingKind::MissingEntry, "missing_entry"},
    {FindingKind::ForbiddenCall, "forbidden_call"},
    {FindingKind::ForbiddenHeader, "forbidden_header"},
    {FindingKind::CompileError, "compile_error"},
    {FindingKind::UndefinedSymbol, "undefined_symbol"},
    {FindingKind::ForbiddenSymbol, "forbidden_symbol"},
    {FindingKind::HostInlineAsm, "host_inline_asm"},
    {FindingKind::Timeout, "timeout"},
    {FindingKind::Crash, "crash"},
    {FindingKind::MemoryLimit, "memory_limit"},
    {FindingKind::NoResult, "no_result"},
    {FindingKind::BadResult, "bad_result"},
    {FindingKind::LoadError, "load_error"},
    {FindingKind::CudaError, "cuda_error"},
    {FindingKind::IllegalAddress, "illegal_address"},
    {FindingKind::ForbiddenSyscall, "forbidden_syscall"},
    {FindingKind::CandidateExited, "candidate_exited"},
    {FindingKind::BadReply, "bad_reply"},
    {FindingKind::RejectedValidArgs, "rejected_valid_args"},
    {FindingKind::UnwrittenOutput, "unwritten_output"},
    {FindingKind::NonfiniteOutput, "nonfinite_output"},
    {FindingKind::WrongOutput, "wrong_output"},
    {FindingKind::WrongLse, "wrong_lse"},
    {FindingKind::OutOfBoundsWrite, "out_of_bounds_write"},
    {FindingKind::InputModified, "input_modified"},
    {FindingKind::WrongStream, "wrong_stream"},
    {FindingKind::LateWrite, "late_write"},
    {FindingKind::RowError, "row_error"},
    {FindingKind::Nondeterministic, "nondeterministic"},
    {FindingKind::BelowPhysicalFloor, "below_physical_floor"},
    {FindingKind::TimingMismatch, "timing_mismatch"},
};

}  // namespace

const char* finding_kind_name(FindingKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) {
      return k.name;
    }
  }
  return "unknown";
}

std::optional<FindingKind> parse_finding_kind(std::string_view name) {
  for (const KindName& k : kKindNames) {
    if (name == k.name) {
      return k.kind;
    }
  }
  return std::nullopt;
}

const char* stage_status_name(StageStatus status) {
  switch (status) {
    case StageStatus::Pass:
      return "pass";
    case StageStatus::Fail:
      return "fail";
    case StageStatus::Skipped:
      break;
  }
  return "skipped";
}

const char* verdict_name(std::optional<Verdict> verdict) {
  if (!verdict) {
    return "";
  }
  switch (*verdict) {
    case Verdict::Pass:
      return "pass";
    case Verdict::Rejected:
      return "rejected";
    case Verdict::Incomplete:
      break;
  }
  return "incomplete";
}

const Finding* VerifyReport::first_rejection() const {
  for (const Finding& f : findings) {
    if (!f.warning) {
      return &f;
    }
  }
  return nullptr;
}

std::string trim_output(const std::string& text, size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  const size_t head = limit / 4, tail = limit - head;
  return text.substr(0, head) + "\n[... " + std::to_string(text.size() - head - tail) + " bytes elided ...]\n" +
         text.substr(text.size() - tail);
}

void to_json(nlohmann::json& j, const WorstElement& w) {
  j = {{"tensor", w.tensor}, {"b", w.b},           {"h", w.h},
       {"i", w.i},           {"d", w.d},           {"got", number(w.got)},
       {"want", number(w.want)}, {"abs_err", number(w.abs_err)}, {"allowed", number(w.allowed)}};
}

void from_json(const nlohmann::json& j, WorstElement& w) {
  get_if(j, "tensor", w.tensor);
  get_if(j, "b", w.b);
  get_if(j, "h", w.h);
  get_if(j, "i", w.i);
  get_if(j, "d", w.d);
  get_number(j, "got", w.got);
  get_number(j, "want", w.want);
  get_number(j, "abs_err", w.abs_err);
  get_number(j, "allowed", w.allowed);
}

void to_json(nlohmann::json& j, const Finding& f) {
  j = {{"kind", finding_kind_name(f.kind)}, {"stage", f.stage},     {"message", f.message},
       {"trial", f.trial}, {"shape", f.shape},   {"warning", f.warning}};
  if (f.worst) {
    j["worst"] = *f.worst;
  }
}

void from_json(const nlohmann::json& j, Finding& f) {
  const std::string kind = j.at("kind").get<std::string>();
  const std::optional<FindingKind> parsed = parse_finding_kind(kind);
  if (!parsed) {
    throw nlohmann::json::other_error::create(501, "unknown finding kind '" + kind + "'", &j);
  }
  f.kind = *parsed;
  get_if(j, "stage", f.stage);
  get_if(j, "message", f.message);
  get_if(j, "trial", f.trial);
  get_if(j, "shape", f.shape);
  get_if(j, "warning", f.warning);
  if (j.contains("worst") && j["worst"].is_object()) {
    f.worst = j["worst"].get<WorstElement>();
  }
}

void to_json(nlohmann::json& j, const TrialSummary& t) {
  j = {{"name", t.name},
       {"shape", t.shape},
       {"ok", t.ok},
       {"max_abs_err", number(t.max_abs_err)},
       {"worst_ratio", number(t.worst_ratio)},
       {"lse_max_abs_err", number(t.lse_max_abs_err)},
       {"row_worst_ratio", number(t.row_worst_ratio)},
       {"seconds", number(t.seconds)}};
}

void from_json(const nlohmann::json& j, TrialSummary& t) {
  t.name = j.at("name").get<std::string>();
  get_if(j, "shape", t.shape);
  get_if(j, "ok", t.ok);
  get_number(j, "max_abs_err", t.max_abs_err);
  get_number(j, "worst_ratio", t.worst_ratio);
  get_number(j, "lse_max_abs_err", t.lse_max_abs_err);
  get_number(j, "row_worst_ratio", t.row_worst_ratio);
  get_number(j, "seconds", t.seconds);
}

void to_json(nlohmann::json& j, const TimingResult& t) {
  j = {{"measured", t.measured},
       {"shape", t.shape},
       {"warmup", t.warmup},
       {"runs", t.runs},
       {"input_sets", t.input_sets},
       {"median_ms", number(t.median_ms)},
       {"min_ms", number(t.min_ms)},
       {"max_ms", number(t.max_ms)},
       {"host_median_ms", number(t.host_median_ms)},
       {"roundtrip_ms", number(t.roundtrip_ms)},
       {"event_median_ms", number(t.event_median_ms)},
       {"kept_exact", t.kept_exact},
       {"peak_tflops", number(t.peak_tflops)},
       {"peak_tbps", number(t.peak_tbps)},
       {"flush_bytes", t.flush_bytes},
       {"flops", number(t.flops)},
       {"kept_fraction", number(t.kept_fraction)},
       {"bytes", t.bytes},
       {"floor_ms", number(t.floor_ms)},
       {"tflops", number(t.tflops)}};
}

void from_json(const nlohmann::json& j, TimingResult& t) {
  get_if(j, "measured", t.measured);
  get_if(j, "shape", t.shape);
  get_if(j, "warmup", t.warmup);
  get_if(j, "runs", t.runs);
  get_if(j, "input_sets", t.input_sets);
  get_number(j, "median_ms", t.median_ms);
  get_number(j, "min_ms", t.min_ms);
  get_number(j, "max_ms", t.max_ms);
  get_number(j, "host_median_ms", t.host_median_ms);
  get_number(j, "roundtrip_ms", t.roundtrip_ms);
  get_number(j, "event_median_ms", t.event_median_ms);
  get_if(j, "kept_exact", t.kept_exact);
  get_number(j, "peak_tflops", t.peak_tflops);
  get_number(j, "peak_tbps", t.peak_tbps);
  get_number(j, "flush_bytes", t.flush_bytes);
  get_number(j, "flops", t.flops);
  get_number(j, "kept_fraction", t.kept_fraction);
  get_number(j, "bytes", t.bytes);
  get_number(j, "floor_ms", t.floor_ms);
  get_number(j, "tflops", t.tflops);
}

void to_json(nlohmann::json& j, const DeviceInfo& d) {
  j = {{"name", d.name}, {"arch", d.arch},     {"sms", d.sms},
       {"driver", d.driver}, {"runtime", d.runtime}, {"l2_bytes", d.l2_bytes}};
}

void from_json(const nlohmann::json& j, DeviceInfo& d) {
  get_if(j, "name", d.name);
  get_if(j, "arch", d.arch);
  get_if(j, "sms", d.sms);
  get_if(j, "driver", d.driver);
  get_if(j, "runtime", d.runtime);
  get_if(j, "l2_bytes", d.l2_bytes);
}

void to_json(nlohmann::json& j, const SandboxFacts& s) {
  j = {{"ran", s.ran},
       {"runner", s.runner},
       {"clean_environment", s.clean_environment},
       {"private_network", s.private_network},
       {"network_note", s.network_note},
       {"wall_limit_s", s.wall_limit_s},
       {"memory_limit_bytes", s.memory_limit_bytes},
       {"memory_limit_method", s.memory_limit_method},
       {"peak_rss_bytes", s.peak_rss_bytes},
       {"exit_code", s.exit_code},
       {"signal", s.signal},
       {"timed_out", s.timed_out},
       {"seconds", s.seconds},
       {"startup_seconds", s.startup_seconds},
       {"stderr_tail", s.stderr_tail},
       {"candidate_host", s.candidate_host}};
}

void to_json(nlohmann::json& j, const HostSandboxFacts& s) {
  j = {{"ran", s.ran},
       {"seccomp", s.seccomp},
       {"no_new_privs", s.no_new_privs},
       {"pid_namespace", s.pid_namespace},
       {"network_namespace", s.network_namespace},
       {"mount_namespace", s.mount_namespace},
       {"user_namespace", s.user_namespace},
       {"read_only_root", s.read_only_root},
       {"no_capabilities", s.no_capabilities},
       {"notes", s.notes},
       {"startup_seconds", number(s.startup_seconds)},
       {"ended", s.ended},
       {"output_tail", s.output_tail}};
}

void from_json(const nlohmann::json& j, HostSandboxFacts& s) {
  get_if(j, "ran", s.ran);
  get_if(j, "seccomp", s.seccomp);
  get_if(j, "no_new_privs", s.no_new_privs);
  get_if(j, "pid_namespace", s.pid_namespace);
  get_if(j, "network_namespace", s.network_namespace);
  get_if(j, "mount_namespace", s.mount_namespace);
  get_if(j, "user_namespace", s.user_namespace);
  get_if(j, "read_only_root", s.read_only_root);
  get_if(j, "no_capabilities", s.no_capabilities);
  get_if(j, "notes", s.notes);
  get_number(j, "startup_seconds", s.startup_seconds);
  get_if(j, "ended", s.ended);
  get_if(j, "output_tail", s.output_tail);
}

void to_json(nlohmann::json& j, const StageResult& s) {
  j = {{"name", s.name}, {"status", stage_status_name(s.status)}, {"seconds", s.seconds}, {"note", s.note}};
}

void to_json(nlohmann::json& j, const VerifyReport& r) {
  j = {{"schema", r.schema},
       {"verdict", verdict_name(r.verdict)},
       {"spec_name", r.spec_name},
       {"spec_file", r.spec_file},
       {"arch", r.arch},
       {"kernel_digest", r.kernel_digest},
       {"seed", r.seed},
       {"stages", r.stages},
       {"findings", r.findings},
       {"trials", r.trials},
       {"ptxas", r.ptxas ? nlohmann::json(*r.ptxas) : nlohmann::json(nullptr)},
       {"compiler_output", r.compiler_output},
       {"compile_seconds", r.compile_seconds},
       {"compile_cached", r.compile_cached},
       {"timing", r.timing},
       {"device", r.device},
       {"sandbox", r.sandbox},
       {"versions",
        {{"kernelgen", r.kernelgen_version},
         {"verifier", r.verifier_version},
         {"abi", r.abi_version},
         {"nvcc", r.nvcc_version}}},
       {"total_seconds", r.total_seconds}};
}

std::string report_json_text(const VerifyReport& r) { return nlohmann::json(r).dump(2) + "\n"; }

std::string report_summary(const VerifyReport& r) {
  std::ostringstream os;
  os << "verdict: " << verdict_name(r.verdict) << " (" << r.spec_name << ", " << r.arch << ")\n";
  for (const StageResult& s : r.stages) {
    os << "  " << s.name << ": " << stage_status_name(s.status);
    if (s.seconds > 0) {
      os << " (" << s.seconds << " s)";
    }
    if (!s.note.empty()) {
      os << " — " << s.note;
    }
    os << "\n";
  }
  for (const Finding& f : r.findings) {
    os << (f.warning ? "  warning " : "  finding ") << finding_kind_name(f.kind) << " [" << f.stage
       << (f.trial.empty() ? "" : ", trial " + f.trial) << "]";
    if (!f.shape.empty()) {
      os << " " << f.shape;
    }
    os << "\n";
    std::istringstream lines(f.message);
    std::string line;
    for (int n = 0; n < 8 && std::getline(lines, line); ++n) {
      os << "    " << line << "\n";
    }
  }
  if (r.ptxas) {
    os << "  ptxas: " << r.ptxas->max_registers << " registers, " << r.ptxas->total_spill_bytes
       << " bytes spilled, " << r.ptxas->max_smem_bytes << " bytes static smem, " << r.ptxas->max_stack_bytes
       << " bytes stack\n";
  }
  if (r.timing.measured) {
    os << "  timing: " << r.timing.median_ms << " ms median of " << r.timing.runs << " (" << r.timing.shape << "), "
       << r.timing.tflops << " TFLOP/s, floor " << r.timing.floor_ms << " ms, host " << r.timing.host_median_ms
       << " ms\n";
  }
  return os.str();
}

}  // namespace kg::verify

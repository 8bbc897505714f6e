#include "loop/prompt.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <string_view>

#include "codegen/python.h"
#include "loop/answer.h"
#include "loop/embedded_prompts.h"
#include "spec/names.h"
#include "verify/abi_header_text.h"
#include "verify/static_check.h"

namespace kg::loop {

namespace {

// Longest single string quoted from a report (a message, a detail, a shape).
constexpr size_t kMaxQuoted = 600;
// Findings described per attempt (the rest are counted).
constexpr size_t kMaxFindingsPerAttempt = 3;
// Compiler error lines quoted per attempt, and context lines after each.
constexpr int kMaxErrorLines = 6;
constexpr int kMaxContextLines = 2;
// Longest line quoted from a candidate's source or compiler output.
constexpr size_t kMaxLineBytes = 300;

// ---- Text hygiene ---------------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s[i] (shortest form, no surrogates, <= U+10FFFF), 0 when
// none starts there.
size_t utf8_length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    n = 2, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (d & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

// `text`, at most `limit` bytes of it, as valid UTF-8 with newlines and tabs kept and every other
// control byte or invalid byte written \xHH; a cut is marked with how many bytes were left out.
std::string clean(std::string_view text, size_t limit = std::string::npos) {
  std::string out;
  out.reserve(std::min(text.size(), limit == std::string::npos ? text.size() : limit) + 16);
  size_t i = 0;
  while (i < text.size()) {
    if (out.size() >= limit) {
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = utf8_length(text, i);
    if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f && n == 1)) {
      out += static_cast<char>(c);
      ++i;
    } else if (n > 1) {
      out.append(text.substr(i, n));
      i += n;
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;  // CRLF → LF
    } else {
      static const char* const kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      ++i;
    }
  }
  if (i < text.size()) {
    out += "…(" + std::to_string(text.size() - i) + " more bytes)";
  }
  return out;
}

// `text` (valid UTF-8) cut to at most `limit` bytes at a character boundary, marked when cut.
std::string cut(const std::string& text, size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) {
    --end;
  }
  return text.substr(0, end) + "\n…(trimmed: " + std::to_string(text.size() - end) + " more bytes)\n";
}

// One line of text, cleaned and short.
std::string one_line(std::string_view text, size_t limit = kMaxQuoted) {
  std::string s = clean(text, limit);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// A fence for `body` that no run of backticks inside it can close.
std::string fence_for(std::string_view body) {
  size_t longest = 0, run = 0;
  for (char c : body) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return std::string(std::max<size_t>(3, longest + 1), '`');
}

std::string fenced(std::string_view body, const char* language) {
  const std::string fence = fence_for(body);
  std::string s = fence + language + "\n" + std::string(body);
  if (s.empty() || s.back() != '\n') {
    s += '\n';
  }
  return s + fence + "\n";
}

// A number for people, or "n/a" when it is not finite.
std::string num(double x, int digits = 3) {
  if (!std::isfinite(x)) {
    return "n/a";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  return buf;
}

std::string percent(double fraction) {
  if (!std::isfinite(fraction)) {
    return "n/a";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

// ---- Templates ------------------------------------------------------------------------------

std::string_view template_text(std::string_view name) {
  for (const EmbeddedPrompt& p : kEmbeddedPrompts) {
    if (name == p.name) {
      return p.text;
    }
  }
  return {};
}

// Fills `{{name}}` from `values` in one pass (values are not scanned again, so text quoted from a
// candidate cannot expand a placeholder); `{{! ... }}` is a comment, removed with the line break
// after it. An unknown name is left as it is.
std::string render(std::string_view text, const std::map<std::string, std::string, std::less<>>& values) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, open - pos));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      out.append(text.substr(open));
      break;
    }
    const std::string_view name = text.substr(open + 2, close - open - 2);
    pos = close + 2;
    if (!name.empty() && name[0] == '!') {
      if (pos < text.size() && text[pos] == '\n') {
        ++pos;
      }
      continue;
    }
    auto it = values.find(name);
    if (it == values.end()) {
      out.append(text.substr(open, pos - open));
    } else {
      out.append(it->second);
    }
  }
  return out;
}

// ---- The spec -------------------------------------------------------------------------------

const char* dtype_text(spec::DType d) { return d == spec::DType::BF16 ? "bf16" : "fp16"; }

std::string spec_args(const spec::Spec& spec) {
  std::string s;
  if (spec.params.empty()) {
    s += "- params: none (`args->params` may be NULL)\n";
  } else {
    s += "- params (`args->params`: a host array of doubles in this order, readable during the call only, so pass the "
         "values to your kernel as arguments; int params hold whole values):";
    for (size_t i = 0; i < spec.params.size(); ++i) {
      s += " [" + std::to_string(i) + "] `" + one_line(spec.params[i].name, 128) + "` (" +
           (spec.params[i].type == spec::Type::Int ? "int" : "float") + ")" + (i + 1 < spec.params.size() ? "," : "");
    }
    s += "\n";
  }
  if (spec.tensors.empty()) {
    s += "- tensors: none (`args->tensors` may be NULL)";
  } else {
    s += "- tensors (`args->tensors`: a host array of device pointers in this order, readable during the call only; "
         "each a contiguous row-major array whose named dimensions take the call's sizes):";
    for (size_t i = 0; i < spec.tensors.size(); ++i) {
      const auto& t = spec.tensors[i];
      std::string shape;
      for (size_t d = 0; d < t.shape.size(); ++d) {
        shape += (d ? ", " : "") + spec::dim_text(t.shape[d]);
      }
      s += " [" + std::to_string(i) + "] `" + one_line(t.name, 128) + "`: " + spec::tensor_dtype_name(t.dtype) + " [" +
           shape + "]" + (i + 1 < spec.tensors.size() ? "," : "");
    }
  }
  return s;
}

std::string spec_python(const spec::Spec& spec) {
  std::string py;
  try {
    py = codegen::emit_python_mods(spec, codegen::PythonFlavor::Plain);
  } catch (const std::exception& e) {
    return "# (the spec's mods could not be written as Python: " + one_line(e.what(), 200) + ")\n";
  }
  // The module's first line says it is generated; in a prompt that is noise.
  if (py.rfind("# Generated by", 0) == 0) {
    const size_t nl = py.find('\n');
    py = nl == std::string::npos ? "" : py.substr(nl + 1);
  }
  return clean(py, 64 * 1024);
}

// ---- Speeds ---------------------------------------------------------------------------------

struct Rates {
  double peak_tflops = 0, peak_tbps = 0;
};

// The rates to judge a timing by: the ones the verifier measured on, else the input's.
Rates rates_for(const verify::TimingResult& t, const PromptInput& in) {
  Rates r;
  r.peak_tflops = t.peak_tflops > 0 ? t.peak_tflops : in.peak_tflops;
  r.peak_tbps = t.peak_tbps > 0 ? t.peak_tbps : in.peak_tbps;
  return r;
}

bool timed(const std::optional<verify::VerifyReport>& report) {
  return report && report->timing.measured && std::isfinite(report->timing.median_ms) && report->timing.median_ms > 0;
}

// "0.412 ms at B=.. : 512 TFLOP/s and 1.2 TB/s, 51.8% of the physical limit (compute-bound: ...)"
std::string speed_text(const verify::TimingResult& t, const PromptInput& in) {
  const Rates r = rates_for(t, in);
  const double seconds = t.median_ms * 1e-3;
  const double tflops = t.tflops > 0 ? t.tflops : (seconds > 0 ? t.flops / seconds / 1e12 : 0);
  const double tbps = seconds > 0 ? t.bytes / seconds / 1e12 : 0;
  std::string s = num(t.median_ms, 4) + " ms (median";
  if (!t.shape.empty()) {
    s += " at " + one_line(t.shape, 200);
  }
  s += "): " + num(tflops) + " TFLOP/s, " + num(tbps) + " TB/s";
  const double fc = r.peak_tflops > 0 ? tflops / r.peak_tflops : 0;
  const double fm = r.peak_tbps > 0 ? tbps / r.peak_tbps : 0;
  if (fc > 0 || fm > 0) {
    const bool compute = fc >= fm;
    s += "; " + percent(std::max(fc, fm)) + " of the physical limit (" +
         (compute ? "compute-bound: " + percent(fc) + " of the " + num(r.peak_tflops, 4) + " TFLOP/s tensor peak"
                  : "memory-bound: " + percent(fm) + " of the " + num(r.peak_tbps, 3) + " TB/s bandwidth") +
         ")";
  } else {
    s += " (the GPU's peak rates are unknown)";
  }
  if (t.floor_ms > 0) {
    s += "; the physical floor at this shape is " + num(t.floor_ms, 3) + " ms";
  }
  return s;
}

std::string ptxas_text(const verify::VerifyReport& report) {
  if (!report.ptxas || report.ptxas->functions.empty()) {
    return "";
  }
  const auto& p = *report.ptxas;
  std::string s = "ptxas: " + std::to_string(p.max_registers) + " registers per thread, " +
                  std::to_string(p.total_spill_bytes) + " bytes of spill stores and loads";
  if (p.max_smem_bytes > 0) {
    s += ", " + std::to_string(p.max_smem_bytes) + " bytes of static shared memory";
  }
  if (p.max_stack_bytes > 0) {
    s += ", " + std::to_string(p.max_stack_bytes) + " bytes of stack";
  }
  return s;
}

// ---- Sections -------------------------------------------------------------------------------

std::string gpu_section(const PromptInput& in) {
  std::string arch = one_line(in.arch, 32);
  std::string s;
  if (in.gpu_name.empty()) {
    s = "Not known: candidates are compiled for " + arch + " but not run this time, so no kernel is timed.";
  } else {
    s = one_line(in.gpu_name, 128) + " (" + arch + ")";
    if (in.peak_tflops > 0 || in.peak_tbps > 0) {
      s += ": peak dense tensor rate " + (in.peak_tflops > 0 ? num(in.peak_tflops, 4) + " TFLOP/s" : "unknown") +
           ", memory bandwidth " + (in.peak_tbps > 0 ? num(in.peak_tbps, 3) + " TB/s" : "unknown") + ".";
    } else {
      s += ": peak rates unknown.";
    }
  }
  if (in.arch == "sm_90a") {
    s += " Hopper: 132 SMs on an H100 SXM, wgmma (warpgroup MMA) from shared memory, TMA bulk copies, mbarriers, "
         "up to 227 KiB of shared memory per block.";
  }
  return s;
}

std::string best_section(const PromptInput& in) {
  std::string s = in.best_is_template
                      ? "The template kernel KernelGen generates for this spec (verified; every candidate is measured "
                        "against it).\n\n"
                      : "A candidate of an earlier round (verified), faster than the template kernel.\n\n";
  if (timed(in.best_report)) {
    s += "- time: " + speed_text(in.best_report->timing, in) + "\n";
    if (!in.best_is_template) {
      if (in.template_ms > 0 && std::isfinite(in.template_ms)) {
        s += "- the template kernel: " + num(in.template_ms, 4) + " ms; this kernel is " +
             num(in.template_ms / in.best_report->timing.median_ms, 3) + "x as fast\n";
      } else {
        s += "- the template kernel was not timed\n";
      }
    }
  } else {
    s += "- time: not timed (no GPU run in this session); judge designs by reasoning, not by measurements\n";
  }
  if (in.best_report) {
    if (std::string p = ptxas_text(*in.best_report); !p.empty()) {
      s += "- " + p + "\n";
    }
  }
  s += "\nIts source:\n\n";
  if (in.best_source.empty()) {
    s += "(not available)\n";
  } else {
    s += fenced(clean(in.best_source, kMaxSourceBytes), "cuda");
  }
  return s;
}

std::string outcome_text(Outcome o) {
  switch (o) {
    case Outcome::Pass: return "passed";
    case Outcome::Rejected: return "rejected by the verifier";
    case Outcome::CompileError: return "refused by the static checks or nvcc";
    case Outcome::NoCode: return "the answer held no usable .cu";
    case Outcome::LlmError: return "the model call failed";
    case Outcome::Compiled: return "compiled; not run (no GPU)";
    case Outcome::Cancelled: return "not finished (the budget ended)";
  }
  return "unknown";
}

// Line `n` (1-based) of `source`, trimmed and short; "" when there is none.
std::string source_line(const std::string& source, long n) {
  if (n <= 0 || source.empty()) {
    return "";
  }
  size_t pos = 0;
  for (long k = 1; k < n; ++k) {
    pos = source.find('\n', pos);
    if (pos == std::string::npos) {
      return "";
    }
    ++pos;
  }
  const size_t end = std::min(source.find('\n', pos), source.size());
  std::string_view line(source.data() + pos, end - pos);
  const size_t b = line.find_first_not_of(" \t");
  return b == std::string_view::npos ? "" : one_line(line.substr(b), 200);
}

// The number after `kernel.cu(` / "line " at the start of a message, 0 when none.
long line_number_after(std::string_view text, std::string_view marker) {
  const size_t at = text.find(marker);
  if (at == std::string_view::npos) {
    return 0;
  }
  long n = 0;
  for (size_t i = at + marker.size(); i < text.size() && i < at + marker.size() + 9; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      break;
    }
    n = n * 10 + (text[i] - '0');
  }
  return n;
}

// A compiler line with its work-directory path replaced: ".../so/ab12.tmp.7.9.cu(12): error" →
// "kernel.cu(12): error".
std::string short_path(std::string_view line) {
  size_t at = line.find(".cu(");
  if (at == std::string_view::npos) {
    at = line.find(".cu:");
  }
  if (at == std::string_view::npos) {
    return std::string(line);
  }
  size_t start = at;
  while (start > 0 && line[start - 1] != ' ' && line[start - 1] != '\t' && line[start - 1] != '"') {
    --start;
  }
  return std::string(line.substr(0, start)) + "kernel" + std::string(line.substr(at));
}

bool error_line(std::string_view line) {
  return line.find("error") != std::string_view::npos && line.find("errors detected") == std::string_view::npos &&
         line.find("error detected") == std::string_view::npos;
}

// The error lines of compiler output (and up to kMaxContextLines indented lines after each, the
// code and caret nvcc prints), with the candidate's source line when nvcc gave none.
std::string compile_errors(std::string_view output, const std::string& source) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < output.size() && lines.size() < 100000;) {
    size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) {
      end = output.size();
    }
    lines.push_back(output.substr(pos, end - pos));
    pos = end + 1;
  }
  std::string s;
  int errors = 0, total = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!error_line(lines[i])) {
      continue;
    }
    ++total;
    if (errors >= kMaxErrorLines) {
      continue;
    }
    ++errors;
    const std::string line = short_path(lines[i]);
    s += one_line(line, kMaxLineBytes) + "\n";
    int context = 0;
    for (size_t k = i + 1; k < lines.size() && context < kMaxContextLines; ++k, ++context) {
      if (lines[k].empty() || (lines[k][0] != ' ' && lines[k][0] != '\t') || error_line(lines[k])) {
        break;
      }
      s += one_line(lines[k], kMaxLineBytes) + "\n";
    }
    if (context == 0) {
      if (std::string code = source_line(source, line_number_after(line, ".cu(")); !code.empty()) {
        s += "    " + code + "\n";
      }
    }
  }
  if (total == 0) {
    // No line says error: the first lines, whatever they are.
    for (size_t i = 0; i < lines.size() && i < 10; ++i) {
      s += one_line(short_path(lines[i]), kMaxLineBytes) + "\n";
    }
  } else if (total > errors) {
    s += "(" + std::to_string(total - errors) + " more error lines)\n";
  }
  return cut(s, kPromptMaxCompileErrorBytes);
}

std::string indent(const std::string& text, const char* prefix) {
  std::string s;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    s += prefix + text.substr(pos, end - pos) + "\n";
    pos = end + 1;
  }
  return s;
}

std::string worst_text(const verify::WorstElement& w) {
  const bool lse = w.d < 0 || w.tensor == "lse";
  std::string where = one_line(w.tensor.empty() ? (lse ? "lse" : "out") : w.tensor, 16) + "[b=" + std::to_string(w.b) +
                      ", h=" + std::to_string(w.h) + ", i=" + std::to_string(w.i) +
                      (lse ? "" : ", d=" + std::to_string(w.d)) + "]";
  return "worst element " + where + ": got " + num(w.got, 6) + ", want " + num(w.want, 6) + ", |error| " +
         num(w.abs_err, 3) + " where " + num(w.allowed, 3) + " is allowed";
}

std::string finding_text(const verify::Finding& f, const std::string& source) {
  std::string s = std::string("- ") + verify::finding_kind_name(f.kind) + (f.warning ? " (warning" : " (") +
                  (f.warning ? ", " : "") + "stage " + one_line(f.stage, 32);
  if (!f.trial.empty()) {
    s += ", trial " + one_line(f.trial, 64);
  }
  if (!f.shape.empty()) {
    s += ": " + one_line(f.shape, 200);
  }
  s += ")";
  if (f.kind == verify::FindingKind::CompileError) {
    s += ":\n" + indent(compile_errors(f.message, source), "    ");
  } else {
    std::string message = clean(f.message, kMaxQuoted);
    while (!message.empty() && message.back() == '\n') {
      message.pop_back();
    }
    s += ": " + (message.find('\n') == std::string::npos ? message + "\n" : "\n" + indent(message, "    "));
    if (f.stage == verify::kStageStatic && f.message.rfind("line ", 0) == 0) {
      if (std::string code = source_line(source, line_number_after(f.message, "line ")); !code.empty()) {
        s += "    the line: " + code + "\n";
      }
    }
  }
  if (f.worst) {
    s += "    " + worst_text(*f.worst) + "\n";
  }
  return s;
}

std::string failure_text(const Attempt& a, size_t index) {
  std::string s = "### Candidate " + std::to_string(index) + " (" + outcome_name(a.outcome) + "): " +
                  outcome_text(a.outcome) + "\n\n";
  const bool findings = a.report && !a.report->findings.empty();
  if (!a.detail.empty() && !findings) {
    s += "- " + clean(a.detail, kMaxQuoted) + "\n";
  }
  if (a.report) {
    std::vector<const verify::Finding*> order;
    for (const auto& f : a.report->findings) {
      if (!f.warning) {
        order.push_back(&f);
      }
    }
    for (const auto& f : a.report->findings) {
      if (f.warning) {
        order.push_back(&f);
      }
    }
    for (size_t i = 0; i < order.size() && i < kMaxFindingsPerAttempt; ++i) {
      s += finding_text(*order[i], a.source);
    }
    if (order.size() > kMaxFindingsPerAttempt) {
      s += "- (" + std::to_string(order.size() - kMaxFindingsPerAttempt) + " more findings)\n";
    }
    if (order.empty() && a.detail.empty()) {
      s += std::string("- verdict: ") + verify::verdict_name(a.report->verdict) + ", no finding recorded\n";
    }
    if (std::string p = ptxas_text(*a.report); !p.empty()) {
      s += "- " + p + "\n";
    }
  }
  return cut(s, kPromptMaxAttemptBytes);
}

std::string slower_text(const Attempt& a, size_t index, const PromptInput& in) {
  std::string s = "### Slower candidate " + std::to_string(index) + ": correct, not faster than the best kernel\n\n";
  if (timed(a.report)) {
    const auto& t = a.report->timing;
    s += "- time: " + speed_text(t, in) + "\n";
    std::string vs;
    if (timed(in.best_report)) {
      vs += num(t.median_ms / in.best_report->timing.median_ms, 3) + "x the best kernel's " +
            num(in.best_report->timing.median_ms, 4) + " ms";
    }
    if (in.template_ms > 0 && std::isfinite(in.template_ms)) {
      vs += std::string(vs.empty() ? "" : ", ") + num(t.median_ms / in.template_ms, 3) + "x the template's " +
            num(in.template_ms, 4) + " ms";
    }
    if (!vs.empty()) {
      s += "- " + vs + "\n";
    }
  } else {
    s += "- not timed\n";
  }
  if (a.report) {
    if (std::string p = ptxas_text(*a.report); !p.empty()) {
      s += "- " + p + "\n";
    }
    for (const auto& f : a.report->findings) {
      if (f.warning) {
        s += finding_text(f, a.source);
        break;
      }
    }
  }
  if (!a.detail.empty()) {
    s += "- " + clean(a.detail, kMaxQuoted) + "\n";
  }
  return cut(s, kPromptMaxAttemptBytes);
}

std::string findings_section(const PromptInput& in) {
  if (in.failures.empty() && in.slower.empty()) {
    return in.round <= 1 ? "This is the first round: no candidate has been tried yet."
                         : "No candidate of the last round failed or came out slower.";
  }
  std::string s;
  if (!in.failures.empty()) {
    s += std::to_string(in.failures.size()) + " candidate" + (in.failures.size() == 1 ? "" : "s") +
         " of the last round failed. What the verifier found:\n\n";
    for (size_t i = 0; i < in.failures.size() && i < kPromptMaxFailures; ++i) {
      s += failure_text(in.failures[i], i + 1) + "\n";
    }
    if (in.failures.size() > kPromptMaxFailures) {
      s += "(" + std::to_string(in.failures.size() - kPromptMaxFailures) + " more failed candidates not shown)\n\n";
    }
  }
  if (!in.slower.empty()) {
    s += std::to_string(in.slower.size()) + " candidate" + (in.slower.size() == 1 ? " was" : "s were") +
         " correct but not faster than the best kernel:\n\n";
    for (size_t i = 0; i < in.slower.size() && i < kPromptMaxSlower; ++i) {
      s += slower_text(in.slower[i], i + 1, in) + "\n";
    }
    if (in.slower.size() > kPromptMaxSlower) {
      s += "(" + std::to_string(in.slower.size() - kPromptMaxSlower) + " more slower candidates not shown)\n\n";
    }
  }
  while (!s.empty() && s.back() == '\n') {
    s.pop_back();
  }
  return s;
}

std::string prototype_of(const std::string& entry) {
  return "extern \"C\" cudaError_t " + entry + "(const KgAttentionArgs* args, cudaStream_t stream)";
}

}  // namespace

std::string entry_name(const spec::Spec& spec) { return verify::entry_symbol(spec.name); }

std::vector<llm::Message> build_prompt(const PromptInput& input) {
  std::map<std::string, std::string, std::less<>> v;
  static const spec::Spec kNoSpec = [] {
    spec::Spec s;
    s.name = "unknown";
    return s;
  }();
  const spec::Spec& spec = input.spec != nullptr ? *input.spec : kNoSpec;
  const std::string entry = one_line(entry_name(spec), 200);
  v["arch"] = input.arch.empty() ? "sm_90a" : one_line(input.arch, 32);
  v["entry"] = entry;
  v["prototype"] = prototype_of(entry);
  v["head_dim"] = std::to_string(spec.head_dim);
  v["dtype"] = dtype_text(spec.dtype);
  v["tolerance"] = spec.dtype == spec::DType::BF16 ? "bf16: 2e-2 + 2e-2" : "fp16: 5e-3 + 5e-3";
  v["abi_header"] = verify::kAbiHeaderText;
  while (!v["abi_header"].empty() && v["abi_header"].back() == '\n') {
    v["abi_header"].pop_back();
  }
  v["round"] = std::to_string(input.round);
  v["spec_name"] = one_line(spec.name, 200);
  v["spec_args"] = spec_args(spec);
  std::string py = input.spec != nullptr ? spec_python(spec) : "# (no spec was given)\n";
  while (!py.empty() && py.back() == '\n') {
    py.pop_back();
  }
  v["spec_python"] = py;
  v["gpu"] = gpu_section(input);
  std::string best = best_section(input);
  while (!best.empty() && best.back() == '\n') {
    best.pop_back();
  }
  v["best"] = best;
  v["findings"] = findings_section(input);

  std::vector<llm::Message> messages;
  messages.push_back({"system", render(template_text("system.md"), v)});
  messages.push_back({"user", render(template_text("user.md"), v)});
  return messages;
}

}  // namespace kg::loop

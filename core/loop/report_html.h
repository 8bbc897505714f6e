// `kernelgen report`: one closed-loop run (loop/history.h) and the kernel it left, as a single
// self-contained HTML page (docs/design.md §5: "every prompt, answer and report is kept for audit
// and plots").
//
// The page opens offline: inline CSS, plots drawn here as inline SVG, no script, font, image or
// link to fetch (a Content-Security-Policy meta tag forbids them too). Every text taken from the
// history or the report is untrusted (model answers above all): it is HTML-escaped (& < > " '),
// its invalid UTF-8 and control bytes are replaced, and each text shows at most kPageTextLimit
// bytes, within a page-wide budget (kPageTextBudget).
//
// Sections carry stable ids for people and tests: summary, plot, rounds, candidates, prompts,
// final-report. In the plot, SVG classes name the parts: "best" (step line of the best time so
// far), "template", "floor" (horizontal lines), "cand outcome-<outcome_name>" (one marker group
// per candidate, with a <title>), "peak" (fraction-of-peak markers, second plot).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "loop/history.h"

namespace kg::loop {

// Longest text (answer, reasoning, source, report, prompt) shown on the page; longer ones keep
// their head and say how much was left out.
inline constexpr size_t kPageTextLimit = 256 * 1024;
// Bytes of such texts on one page; past it each text shows at most kPageTextMinimum bytes.
inline constexpr size_t kPageTextBudget = 24 * 1024 * 1024;
inline constexpr size_t kPageTextMinimum = 2 * 1024;

struct ReportInput {
  std::optional<History> history;  // nullopt: no loop ran (a template kernel)
  // From the cache record (or the history when there is none).
  std::string name;          // spec name
  std::string key;           // cache key
  std::string arch;          // e.g. sm_90a
  std::string generator;     // Generator::version(): "tmpl-16", "llm:<model>"
  std::string verification;  // cache::verification_name(); "" when not from a record
  std::string report_json;   // the final verifier report (verify/report.h); "" when there is none
};

// The page. Pure and deterministic: the same input gives the same bytes (no clock, no
// environment). Never fails: damaged or odd values (a report that is not JSON, zero or huge
// times, best naming no candidate) are shown as such; no number written into the SVG is NaN or
// infinite.
std::string render_report_html(const ReportInput& input);

}  // namespace kg::loop

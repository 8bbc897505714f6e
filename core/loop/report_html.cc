#include "loop/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "version.h"

namespace kg::loop {

namespace {

using nlohmann::json;

// ---- text -------------------------------------------------------------------------------------

// Appends the UTF-8 replacement character.
void append_replacement(std::string& out) { out += "\xEF\xBF\xBD"; }

// Length of the valid UTF-8 sequence at text[i] (1-4), or 0 when it is not one (overlong forms,
// surrogates, code points past U+10FFFF, truncated sequences). Sets `cp` to its code point.
size_t utf8_sequence(std::string_view text, size_t i, uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t n = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

// Appends `text` as HTML character data or attribute value: & < > " ' as entities, invalid UTF-8
// and control characters (but tab, newline and carriage return) as U+FFFD. Since '<' never
// passes, no tag, comment or `</script>` can start inside.
void append_escaped(std::string& out, std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_sequence(text, i, cp);
    if (n == 0) {
      append_replacement(out);
      ++i;
      continue;
    }
    if (n == 1) {
      switch (text[i]) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        case '\t':
        case '\n':
        case '\r':
          out += text[i];
          break;
        default:
          if (cp < 0x20 || cp == 0x7F) {
            append_replacement(out);
          } else {
            out += text[i];
          }
      }
    } else if (cp >= 0x80 && cp <= 0x9F) {  // C1 controls
      append_replacement(out);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
}

std::string esc(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  append_escaped(out, text);
  return out;
}

// The first `limit` bytes of `text`, cut before a UTF-8 continuation byte.
std::string_view head(std::string_view text, size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  size_t cut = limit;
  for (int k = 0; k < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++k) {
    --cut;
  }
  return text.substr(0, cut);
}

// A number for people: `digits` after the point; "—" when it is not finite.
std::string num(double v, int digits = 3) {
  if (!std::isfinite(v)) {
    return "—";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Four significant digits, for axis ticks and tooltips ("—" when not finite).
std::string sig(double v) {
  if (!std::isfinite(v)) {
    return "—";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A coordinate for the SVG: never NaN or infinite (such values become 0), one decimal.
std::string coord(double v) {
  if (!std::isfinite(v)) {
    v = 0;
  }
  v = std::clamp(v, -1e6, 1e6);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

double finite_or_zero(double v) { return std::isfinite(v) ? v : 0.0; }

// Any JSON value as text: strings as they are, the rest as JSON.
std::string json_text(const json& v) {
  if (v.is_string()) {
    return v.get<std::string>();
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The long texts of the page share one budget (kPageTextBudget): each shows at most
// kPageTextLimit bytes; once the budget is spent, at most kPageTextMinimum.
class TextBudget {
 public:
  // `text` escaped for a <pre>, cut to what the budget allows, with a note saying what was cut.
  std::string show(std::string_view text) {
    size_t allowed = std::min(kPageTextLimit, std::max(m_left, kPageTextMinimum));
    std::string_view shown = head(text, allowed);
    m_left -= std::min(m_left, shown.size());
    std::string out = esc(shown);
    if (shown.size() < text.size()) {
      out += "\n<span class=\"cut\">[" + std::to_string(text.size() - shown.size()) +
             " more bytes not shown; the loop history holds the whole text]</span>";
    }
    return out;
  }

 private:
  size_t m_left = kPageTextBudget;
};

// ---- page parts -------------------------------------------------------------------------------

constexpr const char* kStyle = R"css(
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;
  padding:0 16px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccd}
h3{font-size:15px;margin:16px 0 6px}.sub{color:#667;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #dde;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:200px;font-weight:600}
pre{background:#f6f7f9;border:1px solid #e1e3e8;padding:8px;overflow:auto;
  max-height:480px;white-space:pre-wrap;word-break:break-word;margin:4px 0}
details{margin:3px 0}summary{cursor:pointer;color:#2a4d8f}
.wide{overflow-x:auto;max-width:100%}td{overflow-wrap:anywhere}
.cut{color:#a33;font-style:italic}.note{color:#555;font-style:italic}
tr.best-row td{background:#eef8ee}tr.texts td{border-top:none;background:#fcfcfd}
.o-pass{color:#1b7a32;font-weight:600}.o-rejected,.o-compile_error,.o-no_code,.o-llm_error{color:#b3261e}
.o-compiled,.o-cancelled{color:#776}
.verdict-pass{color:#1b7a32;font-weight:700}.verdict-rejected{color:#b3261e;font-weight:700}
.verdict-incomplete{color:#8a6d00;font-weight:700}
svg{background:#fff;border:1px solid #e1e3e8;margin:6px 0;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#334}svg .axis{stroke:#334;stroke-width:1}
svg .grid{stroke:#e7e9ef;stroke-width:1}svg .round-mark{stroke:#99a;stroke-width:1;stroke-dasharray:1 4}
svg .band{fill:#fbf1f0}
svg .best{fill:none;stroke:#1b7a32;stroke-width:2.2}
svg .template{stroke:#2a4d8f;stroke-width:1.6;stroke-dasharray:7 4}
svg .floor{stroke:#b3261e;stroke-width:1.2;stroke-dasharray:2 3}
svg .cand{stroke-width:1.6}
svg .outcome-pass{fill:#1b7a32;stroke:#0d4019}svg .outcome-rejected{fill:none;stroke:#b3261e}
svg .outcome-compile_error{fill:#e08a00;stroke:#8a4f00}svg .outcome-no_code{fill:#9a59c2;stroke:#5b2d7a}
svg .outcome-llm_error{fill:#6f7480;stroke:#3b3f47}svg .outcome-compiled{fill:none;stroke:#2a4d8f}
svg .outcome-cancelled{fill:#b8bcc6;stroke:#8a8f99}
svg .peak{fill:#2a4d8f;stroke:#14284f}svg .peak-line{stroke:#b3261e;stroke-width:1;stroke-dasharray:4 3}
)css";

constexpr Outcome kOutcomes[] = {Outcome::Pass,     Outcome::Rejected, Outcome::CompileError, Outcome::NoCode,
                                 Outcome::LlmError, Outcome::Compiled, Outcome::Cancelled};

int outcome_index(Outcome o) {
  for (size_t i = 0; i < std::size(kOutcomes); ++i) {
    if (kOutcomes[i] == o) {
      return static_cast<int>(i);
    }
  }
  return 0;
}

// A marker's shape at (x, y), drawn by outcome.
std::string marker_shape(Outcome o, double x, double y) {
  const std::string cx = coord(x), cy = coord(y);
  auto at = [&](double dx, double dy) { return coord(x + dx) + " " + coord(y + dy); };
  switch (o) {
    case Outcome::Pass:
      return "<circle cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"4.5\"/>";
    case Outcome::Rejected:
      return "<path d=\"M" + at(-4, -4) + " L" + at(4, 4) + " M" + at(-4, 4) + " L" + at(4, -4) + "\"/>";
    case Outcome::CompileError:
      return "<path d=\"M" + at(0, -5) + " L" + at(5, 4) + " L" + at(-5, 4) + " Z\"/>";
    case Outcome::NoCode:
      return "<rect x=\"" + coord(x - 4) + "\" y=\"" + coord(y - 4) + "\" width=\"8\" height=\"8\"/>";
    case Outcome::LlmError:
      return "<path d=\"M" + at(0, -5) + " L" + at(5, 0) + " L" + at(0, 5) + " L" + at(-5, 0) + " Z\"/>";
    case Outcome::Compiled:
      return "<circle cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"4\"/>";
    case Outcome::Cancelled:
      return "<rect x=\"" + coord(x - 4) + "\" y=\"" + coord(y - 1.5) + "\" width=\"8\" height=\"3\"/>";
  }
  return "";
}

// A step of 1, 2 or 5 times a power of ten near `raw` (1 when raw is not a positive number).
double nice_step(double raw) {
  if (!std::isfinite(raw) || raw <= 0) {
    return 1;
  }
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / p;
  const double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  return std::isfinite(step) && step > 0 ? step : 1;
}

// An axis from 0 to a multiple of its tick step covering `max`.
struct Axis {
  double max = 1, step = 1;
  int ticks = 1;
};

Axis make_axis(double max, int want_ticks) {
  Axis a;
  if (!std::isfinite(max) || max <= 0) {
    max = 1;
  }
  a.step = nice_step(max / want_ticks);
  a.ticks = static_cast<int>(std::clamp(std::ceil(max / a.step - 1e-9), 1.0, 40.0));
  a.max = a.ticks * a.step;
  if (!std::isfinite(a.max) || a.max <= 0) {
    a = Axis{};
  }
  return a;
}

// Geometry of the main plot (SVG user units).
constexpr double kW = 960, kH = 488;
constexpr double kLeft = 78, kRight = 930, kTop = 78, kBottom = 392;
constexpr double kBandTop = 14;  // rows of the markers of candidates without a time
constexpr double kBandRow = 8;

class Plot {
 public:
  explicit Plot(const History& h) : m_h(h) {
    double xmax = finite_or_zero(h.total_s);
    double ymax = std::max(finite_or_zero(h.template_ms), finite_or_zero(h.floor_ms));
    for (const Candidate& c : h.candidates) {
      xmax = std::max(xmax, finite_or_zero(c.end_s));
      if (timed(c)) {
        ymax = std::max(ymax, c.time_ms);
      }
    }
    for (const Round& r : h.rounds) {
      xmax = std::max(xmax, finite_or_zero(r.end_s));
    }
    // One very slow candidate must not flatten the rest: above 3x the template, markers sit on
    // the top edge (their tooltips give the time).
    if (h.template_ms > 0 && std::isfinite(h.template_ms)) {
      ymax = std::min(ymax, 3 * h.template_ms);
    }
    m_x = make_axis(xmax, 8);
    m_y = make_axis(ymax * 1.08, 6);
  }

  static bool timed(const Candidate& c) {
    return c.outcome == Outcome::Pass && std::isfinite(c.time_ms) && c.time_ms > 0;
  }
  double x(double s) const {
    return kLeft + std::clamp(finite_or_zero(s) / m_x.max, 0.0, 1.0) * (kRight - kLeft);
  }
  double y(double ms) const {
    return kBottom - std::clamp(finite_or_zero(ms) / m_y.max, 0.0, 1.0) * (kBottom - kTop);
  }

  std::string svg() const {
    std::string s;
    s += "<svg id=\"plot-time\" viewBox=\"0 0 " + coord(kW) + " " + coord(kH) + "\" width=\"" + coord(kW) +
         "\" height=\"" + coord(kH) +
         "\" role=\"img\" aria-label=\"kernel time of every candidate over the loop\">\n";
    s += "<rect class=\"band\" x=\"" + coord(kLeft) + "\" y=\"" + coord(kBandTop - 5) + "\" width=\"" +
         coord(kRight - kLeft) + "\" height=\"" + coord(kBandRow * std::size(kOutcomes) + 2) + "\"/>\n";
    s += "<text x=\"" + coord(kLeft - 6) + "\" y=\"" + coord(kBandTop + 3 * kBandRow + 4) +
         "\" text-anchor=\"end\">not timed</text>\n";
    axes(s);
    lines(s);
    markers(s);
    legend(s);
    s += "</svg>\n";
    return s;
  }

 private:
  void axes(std::string& s) const {
    s += "<g class=\"axes\">\n";
    for (int i = 0; i <= m_x.ticks; ++i) {
      const double v = i * m_x.step, px = x(v);
      s += "<line class=\"grid\" x1=\"" + coord(px) + "\" y1=\"" + coord(kTop) + "\" x2=\"" + coord(px) +
           "\" y2=\"" + coord(kBottom) + "\"/>";
      s += "<text x=\"" + coord(px) + "\" y=\"" + coord(kBottom + 16) + "\" text-anchor=\"middle\">" +
           sig(v) + "</text>\n";
    }
    for (int i = 0; i <= m_y.ticks; ++i) {
      const double v = i * m_y.step, py = y(v);
      s += "<line class=\"grid\" x1=\"" + coord(kLeft) + "\" y1=\"" + coord(py) + "\" x2=\"" + coord(kRight) +
           "\" y2=\"" + coord(py) + "\"/>";
      s += "<text x=\"" + coord(kLeft - 6) + "\" y=\"" + coord(py + 4) + "\" text-anchor=\"end\">" + sig(v) +
           "</text>\n";
    }
    s += "<line class=\"axis\" x1=\"" + coord(kLeft) + "\" y1=\"" + coord(kBottom) + "\" x2=\"" +
         coord(kRight) + "\" y2=\"" + coord(kBottom) + "\"/>";
    s += "<line class=\"axis\" x1=\"" + coord(kLeft) + "\" y1=\"" + coord(kTop) + "\" x2=\"" + coord(kLeft) +
         "\" y2=\"" + coord(kBottom) + "\"/>\n";
    s += "<text x=\"" + coord((kLeft + kRight) / 2) + "\" y=\"" + coord(kBottom + 36) +
         "\" text-anchor=\"middle\">time since the loop started (s)</text>\n";
    s += "<text x=\"18\" y=\"" + coord((kTop + kBottom) / 2) +
         "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + coord((kTop + kBottom) / 2) +
         ")\">kernel time (ms)</text>\n";
    s += "</g>\n";
  }

  void lines(std::string& s) const {
    // Where each round after the first began.
    for (const Round& r : m_h.rounds) {
      if (finite_or_zero(r.start_s) > 0) {
        const std::string px = coord(x(r.start_s));
        s += "<line class=\"round-mark\" x1=\"" + px + "\" y1=\"" + coord(kTop) + "\" x2=\"" + px +
             "\" y2=\"" + coord(kBottom) + "\"/><text x=\"" + coord(x(r.start_s) + 3) + "\" y=\"" +
             coord(kTop + 11) + "\">round " + std::to_string(r.index) + "</text>\n";
      }
    }
    const double tmpl = finite_or_zero(m_h.template_ms);
    if (tmpl > 0) {
      s += "<line class=\"template\" x1=\"" + coord(kLeft) + "\" y1=\"" + coord(y(tmpl)) + "\" x2=\"" +
           coord(kRight) + "\" y2=\"" + coord(y(tmpl)) + "\"><title>template kernel: " + sig(tmpl) +
           " ms</title></line>\n";
    } else {
      s += "<text x=\"" + coord(kRight - 4) + "\" y=\"" + coord(kTop + 14) +
           "\" text-anchor=\"end\">the template kernel was not timed</text>\n";
    }
    const double floor = finite_or_zero(m_h.floor_ms);
    if (floor > 0) {
      s += "<line class=\"floor\" x1=\"" + coord(kLeft) + "\" y1=\"" + coord(y(floor)) + "\" x2=\"" +
           coord(kRight) + "\" y2=\"" + coord(y(floor)) + "\"><title>physical floor: " + sig(floor) +
           " ms</title></line>\n";
    }
    // Best so far: the template until a candidate beats it, stepping down at each new best.
    std::vector<const Candidate*> timed_c;
    for (const Candidate& c : m_h.candidates) {
      if (timed(c)) {
        timed_c.push_back(&c);
      }
    }
    std::stable_sort(timed_c.begin(), timed_c.end(), [](const Candidate* a, const Candidate* b) {
      return finite_or_zero(a->end_s) < finite_or_zero(b->end_s);
    });
    std::string d;
    double best = tmpl;
    if (best > 0) {
      d = "M" + coord(x(0)) + " " + coord(y(best));
    }
    for (const Candidate* c : timed_c) {
      if (d.empty()) {
        d = "M" + coord(x(c->end_s)) + " " + coord(y(c->time_ms));
        best = c->time_ms;
      } else if (c->time_ms < best) {
        d += " H" + coord(x(c->end_s)) + " V" + coord(y(c->time_ms));
        best = c->time_ms;
      }
    }
    if (!d.empty()) {
      d += " H" + coord(kRight);
      s += "<path class=\"best\" d=\"" + d + "\"><title>best kernel so far: " + sig(best) +
           " ms at the end</title></path>\n";
    }
  }

  void markers(std::string& s) const {
    for (size_t i = 0; i < m_h.candidates.size(); ++i) {
      const Candidate& c = m_h.candidates[i];
      const double px = x(c.end_s);
      const double py = timed(c) ? y(c.time_ms) : kBandTop + kBandRow * outcome_index(c.outcome);
      std::string tip = "candidate " + std::to_string(i) + ": round " + std::to_string(c.round) +
                        ", sample " + std::to_string(c.sample) + ", " + outcome_name(c.outcome);
      if (timed(c)) {
        tip += ", " + sig(c.time_ms) + " ms";
      }
      tip += ", done at " + num(c.end_s, 1) + " s";
      if (!c.detail.empty()) {
        tip += "\n";
        tip += head(c.detail, 400);
      }
      s += "<g class=\"cand outcome-" + std::string(outcome_name(c.outcome)) + "\" data-index=\"" +
           std::to_string(i) + "\"><title>" + esc(tip) + "</title>" + marker_shape(c.outcome, px, py) +
           "</g>\n";
    }
  }

  void legend(std::string& s) const {
    // Two rows: the lines, then the outcomes.
    double lx = kLeft;
    double ly = kH - 34;
    auto item = [&](const std::string& mark, const std::string& label) {
      s += mark + "<text x=\"" + coord(lx + 26) + "\" y=\"" + coord(ly + 4) + "\">" + label + "</text>\n";
      lx += 34 + 6.5 * static_cast<double>(label.size());
    };
    auto line_mark = [&](const char* cls) {
      return "<line class=\"legend-line " + std::string(cls) + "\" x1=\"" + coord(lx) + "\" y1=\"" +
             coord(ly) + "\" x2=\"" + coord(lx + 20) + "\" y2=\"" + coord(ly) + "\"/>";
    };
    s += "<g class=\"legend\">\n";
    item(line_mark("best"), "best so far");
    item(line_mark("template"), "template");
    item(line_mark("floor"), "physical floor");
    lx = kLeft;
    ly += 18;
    for (Outcome o : kOutcomes) {
      item("<g class=\"legend-mark outcome-" + std::string(outcome_name(o)) + "\" stroke-width=\"1.6\">" +
               marker_shape(o, lx + 10, ly) + "</g>",
           outcome_name(o));
    }
    s += "</g>\n";
  }

  const History& m_h;
  Axis m_x, m_y;
};

// The second plot: fraction of the GPU's peak of each passed candidate.
std::string peak_svg(const History& h) {
  constexpr double w = 960, ht = 220, left = 78, right = 930, top = 16, bottom = 170;
  double xmax = finite_or_zero(h.total_s), fmax = 1;
  for (const Candidate& c : h.candidates) {
    xmax = std::max(xmax, finite_or_zero(c.end_s));
    if (c.outcome == Outcome::Pass) {
      fmax = std::max(fmax, std::min(finite_or_zero(c.fraction_of_peak), 2.0));
    }
  }
  for (const Round& r : h.rounds) {
    xmax = std::max(xmax, finite_or_zero(r.end_s));
  }
  const Axis ax = make_axis(xmax, 8);
  const Axis ay = make_axis(fmax, 4);
  auto x = [&](double v) { return left + std::clamp(finite_or_zero(v) / ax.max, 0.0, 1.0) * (right - left); };
  auto y = [&](double v) {
    return bottom - std::clamp(finite_or_zero(v) / ay.max, 0.0, 1.0) * (bottom - top);
  };
  std::string s = "<svg id=\"plot-peak\" viewBox=\"0 0 " + coord(w) + " " + coord(ht) + "\" width=\"" +
                  coord(w) + "\" height=\"" + coord(ht) +
                  "\" role=\"img\" aria-label=\"fraction of the GPU's peak of each passed candidate\">\n";
  for (int i = 0; i <= ax.ticks; ++i) {
    const double v = i * ax.step;
    s += "<line class=\"grid\" x1=\"" + coord(x(v)) + "\" y1=\"" + coord(top) + "\" x2=\"" + coord(x(v)) +
         "\" y2=\"" + coord(bottom) + "\"/><text x=\"" + coord(x(v)) + "\" y=\"" + coord(bottom + 16) +
         "\" text-anchor=\"middle\">" + sig(v) + "</text>\n";
  }
  for (int i = 0; i <= ay.ticks; ++i) {
    const double v = i * ay.step;
    s += "<line class=\"grid\" x1=\"" + coord(left) + "\" y1=\"" + coord(y(v)) + "\" x2=\"" + coord(right) +
         "\" y2=\"" + coord(y(v)) + "\"/><text x=\"" + coord(left - 6) + "\" y=\"" + coord(y(v) + 4) +
         "\" text-anchor=\"end\">" + num(100 * v, 0) + "%</text>\n";
  }
  s += "<line class=\"axis\" x1=\"" + coord(left) + "\" y1=\"" + coord(bottom) + "\" x2=\"" + coord(right) +
       "\" y2=\"" + coord(bottom) + "\"/><line class=\"axis\" x1=\"" + coord(left) + "\" y1=\"" + coord(top) +
       "\" x2=\"" + coord(left) + "\" y2=\"" + coord(bottom) + "\"/>\n";
  s += "<line class=\"peak-line\" x1=\"" + coord(left) + "\" y1=\"" + coord(y(1)) + "\" x2=\"" +
       coord(right) + "\" y2=\"" + coord(y(1)) + "\"><title>the GPU's peak</title></line>\n";
  s += "<text x=\"" + coord((left + right) / 2) + "\" y=\"" + coord(bottom + 36) +
       "\" text-anchor=\"middle\">time since the loop started (s)</text>\n";
  s += "<text x=\"18\" y=\"" + coord((top + bottom) / 2) +
       "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + coord((top + bottom) / 2) +
       ")\">of peak</text>\n";
  for (size_t i = 0; i < h.candidates.size(); ++i) {
    const Candidate& c = h.candidates[i];
    if (c.outcome != Outcome::Pass || !(finite_or_zero(c.fraction_of_peak) > 0)) {
      continue;
    }
    s += "<circle class=\"peak\" cx=\"" + coord(x(c.end_s)) + "\" cy=\"" + coord(y(c.fraction_of_peak)) +
         "\" r=\"4\"><title>" +
         esc("candidate " + std::to_string(i) + ": round " + std::to_string(c.round) + ", sample " +
             std::to_string(c.sample) + ", " + num(100 * c.fraction_of_peak, 1) + "% of peak, " +
             sig(c.tflops) + " TFLOP/s") +
         "</title></circle>\n";
  }
  s += "</svg>\n";
  return s;
}

// ---- tables -----------------------------------------------------------------------------------

void kv_row(std::string& s, const std::string& name, const std::string& escaped_value) {
  s += "<tr><th>" + esc(name) + "</th><td>" + escaped_value + "</td></tr>\n";
}

std::string or_dash(const std::string& v) { return v.empty() ? "—" : esc(v); }

// The template's fraction of peak from its report (0 when the report says nothing usable).
double report_fraction_of_peak(const std::string& report_text) {
  const json j = json::parse(report_text, nullptr, false);
  if (!j.is_object() || !j.contains("timing") || !j["timing"].is_object()) {
    return 0;
  }
  const json& t = j["timing"];
  auto number = [&](const char* k) { return t.contains(k) && t[k].is_number() ? t[k].get<double>() : 0.0; };
  const double ms = number("median_ms"), pt = number("peak_tflops"), pb = number("peak_tbps");
  double f = 0;
  if (pt > 0) {
    f = std::max(f, number("tflops") / pt);
  }
  if (pb > 0 && ms > 0) {
    f = std::max(f, number("bytes") / (ms * 1e-3) / 1e12 / pb);
  }
  return finite_or_zero(f);
}

std::string ms(double v) { return v > 0 && std::isfinite(v) ? sig(v) + " ms" : "—"; }

void summary(std::string& s, const ReportInput& in) {
  s += "<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"kv\">\n";
  const History* h = in.history ? &*in.history : nullptr;
  kv_row(s, "spec", or_dash(in.name));
  kv_row(s, "key", or_dash(in.key));
  kv_row(s, "arch", or_dash(in.arch));
  if (!in.generator.empty()) {
    kv_row(s, "generator", esc(in.generator));
  }
  if (!in.verification.empty()) {
    kv_row(s, "verification", esc(in.verification));
  }
  if (h == nullptr) {
    s += "</table>\n<p class=\"note\" id=\"no-loop\">No closed loop ran for this kernel: it was made by " +
         or_dash(in.generator) +
         " without a model, so there are no rounds, candidates or prompts. The final verifier report is "
         "below.</p>\n"
         "</section>\n";
    return;
  }
  int passed = 0;
  for (const Candidate& c : h->candidates) {
    passed += c.outcome == Outcome::Pass ? 1 : 0;
  }
  const bool best_ok = h->best >= 0 && h->best < static_cast<int>(h->candidates.size());
  kv_row(s, "model", or_dash(h->model));
  kv_row(s, "endpoint", or_dash(h->endpoint));
  kv_row(s, "prompt version", or_dash(h->prompt_version));
  kv_row(s, "temperature", num(h->temperature, 2));
  kv_row(s, "samples per round", std::to_string(h->samples));
  kv_row(s, "budget",
         num(h->budget_s, 0) + " s, at most " + std::to_string(h->max_rounds) + " rounds, patience " +
             std::to_string(h->patience));
  kv_row(s, "mode", h->run ? "verified and timed on the GPU" : "--no-run: static checks and compile only");
  kv_row(s, "rounds", std::to_string(h->rounds.size()));
  kv_row(s, "candidates", std::to_string(h->candidates.size()));
  kv_row(s, "passed", std::to_string(passed));
  kv_row(s, "best",
         best_ok ? "candidate " + std::to_string(h->best) + " (round " +
                       std::to_string(h->candidates[h->best].round) + ", sample " +
                       std::to_string(h->candidates[h->best].sample) + ")"
                 : std::string("the template kernel"));
  kv_row(s, "best time", ms(h->best_ms));
  kv_row(s, "template time", ms(h->template_ms));
  kv_row(s, "speedup over the template",
         std::isfinite(h->speedup) && h->speedup > 0 ? num(h->speedup, 2) + "×" : "—");
  const double frac =
      best_ok ? h->candidates[h->best].fraction_of_peak : report_fraction_of_peak(h->template_report_json);
  kv_row(s, "fraction of peak", frac > 0 && std::isfinite(frac) ? num(100 * frac, 1) + "%" : "—");
  kv_row(s, "physical floor", ms(h->floor_ms));
  kv_row(s, "stop reason", or_dash(h->stop_reason));
  kv_row(s, "total time", num(h->total_s, 1) + " s");
  kv_row(s, "GPU",
         h->gpu.empty()
             ? "—"
             : esc(h->gpu) + " (peak " + sig(h->peak_tflops) + " TFLOP/s, " + sig(h->peak_tbps) + " TB/s)");
  s += "</table>\n</section>\n";
}

void plot_section(std::string& s, const ReportInput& in) {
  s += "<section id=\"plot\">\n<h2>Kernel time over the loop</h2>\n";
  if (!in.history) {
    s += "<p class=\"note\">No loop ran: nothing to plot.</p>\n</section>\n";
    return;
  }
  s += "<p class=\"sub\">Each mark is one candidate, at the time its verdict was known: passed kernels at "
       "their "
       "median time, the others in the band at the top, by outcome (hover for details).</p>\n";
  s += Plot(*in.history).svg();
  s += "<h3>Fraction of the GPU's peak (passed candidates)</h3>\n";
  if (!(in.history->peak_tflops > 0)) {
    s += "<p class=\"note\">No GPU rates recorded.</p>\n";
  }
  s += peak_svg(*in.history);
  s += "</section>\n";
}

void rounds_section(std::string& s, const History* h) {
  s += "<section id=\"rounds\">\n<h2>Rounds</h2>\n";
  if (h == nullptr || h->rounds.empty()) {
    s += "<p class=\"note\">No rounds.</p>\n</section>\n";
    return;
  }
  s += "<table>\n<tr><th>round</th><th>start s</th><th>end s</th><th>candidates</th><th>passed</th>"
       "<th>model s</th><th>compile s</th><th>verify s</th><th>best after</th></tr>\n";
  for (const Round& r : h->rounds) {
    s += "<tr><td class=\"n\">" + std::to_string(r.index) + "</td><td class=\"n\">" + num(r.start_s, 1) +
         "</td><td class=\"n\">" + num(r.end_s, 1) + "</td><td class=\"n\">" + std::to_string(r.candidates) +
         "</td><td class=\"n\">" + std::to_string(r.passed) + "</td><td class=\"n\">" + num(r.model_s, 1) +
         "</td><td class=\"n\">" + num(r.compile_s, 1) + "</td><td class=\"n\">" + num(r.verify_s, 1) +
         "</td><td class=\"n\">" + ms(r.best_ms_after) + "</td></tr>\n";
  }
  s += "</table>\n</section>\n";
}

void text_block(std::string& s, TextBudget& budget, const std::string& title, const std::string& text,
                bool open = false) {
  if (text.empty()) {
    return;
  }
  s += std::string(open ? "<details open>" : "<details>") + "<summary>" + esc(title) + " (" +
       std::to_string(text.size()) + " bytes)</summary><pre>" + budget.show(text) + "</pre></details>\n";
}

// A JSON text pretty-printed (as it is when it is not JSON).
std::string pretty_json(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? text : j.dump(2, ' ', false, json::error_handler_t::replace);
}

void candidates_section(std::string& s, TextBudget& budget, const History* h) {
  s += "<section id=\"candidates\">\n<h2>Candidates</h2>\n";
  if (h == nullptr || h->candidates.empty()) {
    s += "<p class=\"note\">No candidates.</p>\n</section>\n";
    return;
  }
  constexpr int kColumns = 14;
  s += "<div "
       "class=\"wide\"><table>\n<tr><th>#</th><th>round</th><th>sample</th><th>outcome</th><th>time</"
       "th><th>TFLOP/s</th>"
       "<th>of peak</th><th>detail</th><th>done s</th><th>model s</th><th>compile s</th><th>verify s</th>"
       "<th>attempts</th><th>tokens in/out/reasoning</th></tr>\n";
  for (size_t i = 0; i < h->candidates.size(); ++i) {
    const Candidate& c = h->candidates[i];
    const bool best = static_cast<int>(i) == h->best;
    const std::string outcome = outcome_name(c.outcome);
    const bool passed = c.outcome == Outcome::Pass;
    s += std::string(best ? "<tr class=\"best-row\" id=\"candidate-" : "<tr id=\"candidate-") +
         std::to_string(i) + "\"><td class=\"n\">" + std::to_string(i) + (best ? " ★" : "") +
         "</td><td class=\"n\">" + std::to_string(c.round) + "</td><td class=\"n\">" +
         std::to_string(c.sample) + "</td><td class=\"o-" + outcome + "\">" + outcome +
         "</td><td class=\"n\">" + (passed ? ms(c.time_ms) : "—") + "</td><td class=\"n\">" +
         (passed ? sig(c.tflops) : "—") + "</td><td class=\"n\">" +
         (passed ? num(100 * c.fraction_of_peak, 1) + "%" : "—") + "</td><td>" + esc(head(c.detail, 2000)) +
         (c.detail.size() > 2000 ? " …" : "") + "</td><td class=\"n\">" + num(c.end_s, 1) +
         "</td><td class=\"n\">" + num(c.model_s, 1) + "</td><td class=\"n\">" + num(c.compile_s, 1) +
         "</td><td class=\"n\">" + num(c.verify_s, 1) + "</td><td class=\"n\">" + std::to_string(c.attempts) +
         "</td><td class=\"n\">" + std::to_string(c.prompt_tokens) + " / " +
         std::to_string(c.completion_tokens) + " / " + std::to_string(c.reasoning_tokens) + "</td></tr>\n";
    if (c.answer.empty() && c.reasoning.empty() && c.source.empty() && c.report_json.empty()) {
      continue;
    }
    s += "<tr class=\"texts\"><td colspan=\"" + std::to_string(kColumns) + "\">\n";
    text_block(s, budget, "answer", c.answer);
    text_block(s, budget, "reasoning", c.reasoning);
    text_block(s, budget, "source", c.source);
    text_block(s, budget, "verifier report", pretty_json(c.report_json));
    s += "</td></tr>\n";
  }
  s += "</table></div>\n</section>\n";
}

void prompts_section(std::string& s, TextBudget& budget, const History* h) {
  s += "<section id=\"prompts\">\n<h2>Prompts</h2>\n";
  if (h == nullptr || h->rounds.empty()) {
    s += "<p class=\"note\">No prompts.</p>\n</section>\n";
    return;
  }
  for (const Round& r : h->rounds) {
    s += "<h3 id=\"prompt-" + std::to_string(r.index) + "\">Round " + std::to_string(r.index) + "</h3>\n";
    if (r.prompt_system.empty() && r.prompt_user.empty()) {
      s += "<p class=\"note\">No prompt recorded.</p>\n";
    }
    text_block(s, budget, "system prompt", r.prompt_system);
    text_block(s, budget, "user prompt", r.prompt_user);
  }
  s += "</section>\n";
}

// A table of an object's fields (nested values as compact JSON).
std::string json_table(const json& obj) {
  std::string s = "<table class=\"kv\">\n";
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string v = json_text(it.value());
    kv_row(s, it.key(), esc(head(v, 4000)) + (v.size() > 4000 ? " …" : ""));
  }
  return s + "</table>\n";
}

// The rows of an array of objects, one column per field of the first.
std::string array_table(const json& arr, const std::vector<std::string>& columns) {
  std::string s = "<table>\n<tr>";
  for (const std::string& c : columns) {
    s += "<th>" + esc(c) + "</th>";
  }
  s += "</tr>\n";
  for (const json& row : arr) {
    s += "<tr>";
    for (const std::string& c : columns) {
      std::string v = row.is_object() && row.contains(c) ? json_text(row[c]) : "";
      s += "<td>" + esc(head(v, 4000)) + (v.size() > 4000 ? " …" : "") + "</td>";
    }
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

void final_report_section(std::string& s, TextBudget& budget, const std::string& text) {
  s += "<section id=\"final-report\">\n<h2>Final verifier report</h2>\n";
  if (text.empty()) {
    s += "<p class=\"note\">No verifier report: the kernel was not verified.</p>\n</section>\n";
    return;
  }
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) {
    s += "<p class=\"note\">The report is not a JSON object; its text:</p>\n<pre>" + budget.show(text) +
         "</pre>\n</section>\n";
    return;
  }
  const std::string verdict = j.contains("verdict") ? json_text(j["verdict"]) : "";
  const bool known = verdict == "pass" || verdict == "rejected" || verdict == "incomplete";
  s += "<p>verdict: <span class=\"" + (known ? "verdict-" + verdict : std::string("verdict")) + "\">" +
       or_dash(verdict) + "</span>";
  for (const char* k : {"spec_name", "arch", "kernel_digest", "seed", "total_seconds"}) {
    if (j.contains(k)) {
      s += " · " + esc(k) + " " + esc(head(json_text(j[k]), 200));
    }
  }
  s += "</p>\n";
  if (j.contains("stages") && j["stages"].is_array() && !j["stages"].empty()) {
    s += "<h3>Stages</h3>\n" + array_table(j["stages"], {"name", "status", "seconds", "note"});
  }
  s += "<h3>Findings</h3>\n";
  if (j.contains("findings") && j["findings"].is_array() && !j["findings"].empty()) {
    s += array_table(j["findings"], {"kind", "stage", "warning", "message", "trial", "shape", "worst"});
  } else {
    s += "<p class=\"note\">None.</p>\n";
  }
  for (const char* part : {"timing", "ptxas", "device", "versions"}) {
    if (j.contains(part) && j[part].is_object()) {
      json shown = j[part];
      json functions;
      if (shown.contains("functions")) {
        functions = shown["functions"];
        shown.erase("functions");
      }
      s += "<h3>" + esc(part) + "</h3>\n" + json_table(shown);
      if (functions.is_array() && !functions.empty()) {
        std::vector<std::string> cols;
        if (functions[0].is_object()) {
          for (auto it = functions[0].begin(); it != functions[0].end(); ++it) {
            cols.push_back(it.key());
          }
        }
        s += array_table(functions, cols);
      }
    }
  }
  if (j.contains("compiler_output") && j["compiler_output"].is_string()) {
    text_block(s, budget, "compiler output", j["compiler_output"].get<std::string>());
  }
  text_block(s, budget, "the whole report (JSON)", j.dump(2, ' ', false, json::error_handler_t::replace));
  s += "</section>\n";
}

}  // namespace

std::string render_report_html(const ReportInput& in) {
  std::string s;
  s.reserve(64 * 1024);
  const History* h = in.history ? &*in.history : nullptr;
  TextBudget budget;
  s += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Nothing on this page may be fetched or run, even were some text to escape its element.
  s += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
       "'unsafe-inline'\">\n";
  s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  s += "<meta name=\"generator\" content=\"kernelgen " + std::string(kVersion) + "\">\n";
  s += "<title>KernelGen report: " + or_dash(in.name) + "</title>\n<style>" + std::string(kStyle) +
       "</style>\n</head>\n<body>\n";
  s += "<h1>KernelGen report: " + or_dash(in.name) + "</h1>\n<p class=\"sub\">key " + or_dash(in.key) +
       " · generated by kernelgen " + std::string(kVersion) + "</p>\n";
  summary(s, in);
  plot_section(s, in);
  rounds_section(s, h);
  candidates_section(s, budget, h);
  prompts_section(s, budget, h);
  final_report_section(s, budget, in.report_json);
  s += "</body>\n</html>\n";
  return s;
}

}  // namespace kg::loop

#include "spec/canonical_reader.h"

#include <iterator>
#include <string>
#include <vector>

#include "spec/limits.h"
#include "spec/spec.h"
#include "util/text.h"

namespace kg::spec {

namespace {

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }

bool is_identifier(std::string_view s) {
  if (s.empty() || !ident_start(s[0])) {
    return false;
  }
  for (char c : s) {
    if (!ident_char(c)) {
      return false;
    }
  }
  return true;
}

// Dimension text: a named dimension or a fixed extent (digits).
bool is_dim(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!ident_char(c)) {
      return false;
    }
  }
  return true;
}

Unexpected<Failure> bad_line(size_t line, const std::string& expected, std::string_view found) {
  return fail("canonical spec, line " + std::to_string(line) + ": expected " + expected + ", found '" +
              printable(found, 120) + "'");
}

// `s` split at the ", " separators outside brackets; "" gives no items.
Expected<std::vector<std::string_view>, Failure> split_list(std::string_view s, size_t line) {
  std::vector<std::string_view> items;
  if (s.empty()) {
    return items;
  }
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      ++depth;
    } else if (s[i] == ']') {
      if (--depth < 0) {
        return bad_line(line, "balanced brackets", s);
      }
    } else if (depth == 0 && s[i] == ',') {
      if (i + 1 >= s.size() || s[i + 1] != ' ') {
        return bad_line(line, "', ' between items", s);
      }
      items.push_back(s.substr(start, i - start));
      start = i + 2;
      ++i;
    }
  }
  if (depth != 0) {
    return bad_line(line, "balanced brackets", s);
  }
  items.push_back(s.substr(start));
  return items;
}

// The inside of "[...]" on `line`.
Expected<std::string_view, Failure> bracketed(std::string_view value, size_t line) {
  if (value.size() < 2 || value.front() != '[' || value.back() != ']') {
    return bad_line(line, "a list in brackets", value);
  }
  return value.substr(1, value.size() - 2);
}

// A canonical expression as spec-language text: type suffixes (":i", ":f", ":b" after a name or a
// tensor element's ']') and the word of explicit conversions ("float(" -> "(") dropped; literals
// and everything else copied. A ':' anywhere else is an error.
Expected<std::string, Failure> expression_text(std::string_view e, size_t line) {
  std::string out;
  out.reserve(e.size());
  auto suffix_at = [&](size_t i) {
    return i + 1 < e.size() && e[i] == ':' && (e[i + 1] == 'i' || e[i + 1] == 'f' || e[i + 1] == 'b') &&
           (i + 2 >= e.size() || !ident_char(e[i + 2]));
  };
  size_t i = 0;
  while (i < e.size()) {
    const char c = e[i];
    if (ident_start(c)) {
      size_t j = i;
      while (j < e.size() && ident_char(e[j])) {
        ++j;
      }
      const std::string_view word = e.substr(i, j - i);
      if (!(word == "float" && j < e.size() && e[j] == '(')) {
        out += word;
      }
      i = j;
      if (suffix_at(i)) {
        i += 2;
      }
    } else if (c >= '0' && c <= '9') {
      // A literal: digits, '.', an exponent with its sign (1e+100, 2.5e-07).
      size_t j = i;
      while (j < e.size() && (ident_char(e[j]) || e[j] == '.' ||
                              ((e[j] == '+' || e[j] == '-') && (e[j - 1] == 'e' || e[j - 1] == 'E')))) {
        ++j;
      }
      out += e.substr(i, j - i);
      i = j;
    } else if (c == ']') {
      out += c;
      ++i;
      if (suffix_at(i)) {
        i += 2;
      }
    } else if (c == ':') {
      return fail("canonical spec, line " + std::to_string(line) + ", column " + std::to_string(i + 1) +
                  ": expected a type suffix (:i, :f or :b) after a name or ']', found '" +
                  printable(e.substr(i, 8)) + "'");
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

// `s` as a YAML double-quoted scalar.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

Expected<std::string, Failure> yaml_from_canonical(std::string_view canonical) {
  static const char* const kFields[] = {"dtype", "head_dim", "mask_mod", "name", "params", "score_mod", "tensors"};
  const std::string header = "kernelgen-canonical-spec " + std::to_string(kCanonicalVersion);
  // Bindings are substituted in the canonical text, so it may be longer than the spec it came from;
  // the rewritten spec must still fit parse_spec's bound, which read_canonical then enforces.
  if (canonical.size() > 2 * kMaxSpecBytes) {
    return fail("canonical spec: " + std::to_string(canonical.size()) + " bytes, more than a spec can have (" +
                std::to_string(2 * kMaxSpecBytes) + ")");
  }
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < canonical.size()) {
    const size_t nl = canonical.find('\n', start);
    if (nl == std::string_view::npos) {
      return bad_line(lines.size() + 1, "a line ending in a newline", canonical.substr(start));
    }
    lines.push_back(canonical.substr(start, nl - start));
    start = nl + 1;
  }
  if (lines.empty() || lines[0] != header) {
    return bad_line(1, "'" + header + "'", lines.empty() ? std::string_view() : lines[0]);
  }
  const size_t want = 1 + std::size(kFields);
  if (lines.size() != want) {
    return fail("canonical spec: expected " + std::to_string(want) + " lines (the header and " +
                std::to_string(want - 1) + " fields), found " + std::to_string(lines.size()));
  }
  std::vector<std::string_view> value(std::size(kFields));
  for (size_t f = 0; f < std::size(kFields); ++f) {
    const std::string prefix = std::string(kFields[f]) + ": ";
    const std::string_view l = lines[f + 1];
    if (l.substr(0, prefix.size()) != prefix) {
      return bad_line(f + 2, "'" + prefix + "...'", l);
    }
    value[f] = l.substr(prefix.size());
  }
  const std::string_view dtype = value[0], head_dim = value[1], name = value[3];
  if (dtype != "bf16" && dtype != "fp16") {
    return bad_line(2, "bf16 or fp16", dtype);
  }
  if (head_dim.empty() || head_dim.size() > 6 || head_dim.find_first_not_of("0123456789") != std::string_view::npos) {
    return bad_line(3, "a head dimension (digits)", head_dim);
  }
  if (!is_identifier(name)) {
    return bad_line(5, "a C identifier", name);
  }

  std::string yaml = "# A spec rebuilt from the canonical form of " + std::string(name) + ".\n";
  yaml += "name: " + std::string(name) + "\n";
  yaml += "dtype: " + std::string(dtype) + "\n";
  yaml += "head_dim: " + std::string(head_dim) + "\n";

  auto params_inside = bracketed(value[4], 6);
  if (!params_inside) {
    return unexpected(params_inside.error());
  }
  auto params = split_list(*params_inside, 6);
  if (!params) {
    return unexpected(params.error());
  }
  if (!params->empty()) {
    yaml += "params:\n";
    for (std::string_view p : *params) {
      const size_t colon = p.find(':');
      const std::string_view pname = p.substr(0, colon);
      const std::string_view ptype = colon == std::string_view::npos ? std::string_view() : p.substr(colon + 1);
      if (!is_identifier(pname) || (ptype != "int" && ptype != "float")) {
        return bad_line(6, "a parameter NAME:int or NAME:float", p);
      }
      yaml += "  " + std::string(pname) + ": " + std::string(ptype) + "\n";
    }
  }

  auto tensors_inside = bracketed(value[6], 8);
  if (!tensors_inside) {
    return unexpected(tensors_inside.error());
  }
  auto tensors = split_list(*tensors_inside, 8);
  if (!tensors) {
    return unexpected(tensors.error());
  }
  if (!tensors->empty()) {
    yaml += "tensors:\n";
    for (std::string_view t : *tensors) {
      const size_t colon = t.find(':');
      const size_t open = t.find('[');
      if (colon == std::string_view::npos || open == std::string_view::npos || open < colon || t.back() != ']') {
        return bad_line(8, "a tensor NAME:DTYPE[DIM, ...]", t);
      }
      const std::string_view tname = t.substr(0, colon);
      const std::string_view tdtype = t.substr(colon + 1, open - colon - 1);
      if (!is_identifier(tname) || !is_identifier(tdtype)) {
        return bad_line(8, "a tensor NAME:DTYPE[DIM, ...]", t);
      }
      auto dims = split_list(t.substr(open + 1, t.size() - open - 2), 8);
      if (!dims) {
        return unexpected(dims.error());
      }
      std::string shape;
      for (std::string_view d : *dims) {
        if (!is_dim(d)) {
          return bad_line(8, "a dimension (a name or digits)", d);
        }
        shape += (shape.empty() ? "" : ", ") + std::string(d);
      }
      yaml += "  " + std::string(tname) + ": {dtype: " + std::string(tdtype) + ", shape: [" + shape + "]}\n";
    }
  }

  auto score = expression_text(value[5], 7);
  if (!score) {
    return unexpected(score.error());
  }
  auto mask = expression_text(value[2], 4);
  if (!mask) {
    return unexpected(mask.error());
  }
  yaml += "score_mod: " + quoted(*score) + "\n";
  yaml += "mask_mod: " + quoted(*mask) + "\n";
  return yaml;
}

Expected<CanonicalSpec, Failure> read_canonical(std::string_view canonical, const std::string& file) {
  auto yaml = yaml_from_canonical(canonical);
  if (!yaml) {
    return unexpected(yaml.error());
  }
  auto spec = parse_spec(*yaml, file);
  if (!spec) {
    return fail("the canonical spec does not parse: " + spec.error().front().str());
  }
  if (canonical_form(*spec) != canonical) {
    return fail("the canonical spec reads back as a different spec (it was altered, or written by a KernelGen "
                "whose canonical form differs)");
  }
  return CanonicalSpec{std::move(*spec), std::move(*yaml)};
}

}  // namespace kg::spec

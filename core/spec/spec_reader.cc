#include "spec/spec_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "spec/limits.h"
#include "spec/names.h"
#include "spec/printable.h"

namespace kg::spec {
namespace {

const std::vector<std::string> kTopLevelFields = {"constants", "dtype",  "head_dim",  "mask_mod",
                                                  "name",      "params", "score_mod", "tensors"};

std::string pos_text(SourcePos p) { return std::to_string(p.line) + ":" + std::to_string(p.col); }

// A first pass over the YAML events, before any node is built: refuses nesting deeper than
// kMaxYamlDepth (yaml-cpp would recurse, and build, much deeper).
// yaml-cpp 0.7's LoadAll never ends on some invalid input (a stray ',' at the top: every call of
// HandleNextDocument yields another empty document at the same place, until memory runs out), so
// the reader never calls LoadAll; a document that starts where the previous one did is the parser
// making no progress, reported as the invalid YAML it is. Documents are counted (for "found 2"),
// then YAML::Load builds the single one.
class YamlShape : public YAML::EventHandler {
 public:
  struct Problem {
    YAML::Mark mark;
    std::string message;
  };

  // Throws YAML::Exception for invalid YAML, like YAML::Load. Returns the first problem found.
  static std::optional<Problem> scan(std::string_view text) {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    YamlShape shape;
    int documents = 0;
    int last_start = -1;
    YAML::Mark second;  // the first node of the second document
    while (true) {
      shape.m_doc_start.reset();
      shape.m_first_node.reset();
      try {
        if (!parser.HandleNextDocument(shape)) {
          break;
        }
      } catch (const TooDeep&) {
        return shape.m_problem;
      }
      const YAML::Mark start = shape.m_doc_start.value_or(YAML::Mark());
      if (start.pos == last_start) {
        const size_t at = static_cast<size_t>(std::max(0, start.pos));
        const std::string found = at < text.size() ? quote_input(text.substr(at, 1)) : "end of input";
        return Problem{start, "invalid YAML: expected a mapping of spec fields, found " + found};
      }
      last_start = start.pos;
      if (++documents == 2) {
        second = shape.m_first_node.value_or(start);
      }
    }
    if (documents > 1) {
      return Problem{second, "expected a single YAML document, found " + std::to_string(documents)};
    }
    return std::nullopt;
  }

  void OnDocumentStart(const YAML::Mark& mark) override { m_doc_start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    enter(mark);
  }
  void OnSequenceEnd() override { --m_depth; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    enter(mark);
  }
  void OnMapEnd() override { --m_depth; }

 private:
  // Thrown through the parser to stop it at the first collection that is too deep.
  struct TooDeep {};

  void node(const YAML::Mark& mark) {
    if (!m_first_node) {
      m_first_node = mark;
    }
  }

  void enter(const YAML::Mark& mark) {
    node(mark);
    if (++m_depth > kMaxYamlDepth) {
      m_problem = Problem{mark, "YAML nested deeper than " + std::to_string(kMaxYamlDepth) +
                                    " (a spec needs at most 3 levels)"};
      throw TooDeep{};
    }
  }

  int m_depth = 0;
  std::optional<YAML::Mark> m_doc_start;
  std::optional<YAML::Mark> m_first_node;
  std::optional<Problem> m_problem;
};

// Reads at most kMaxSpecBytes + 1 bytes of `path` (one more than accepted, to tell "too large").
Expected<std::string, std::string> read_bounded(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return unexpected("cannot open " + escape_nonprintable(path) + ": " + std::strerror(errno));
  }
  std::string text(kMaxSpecBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    return unexpected("cannot read " + escape_nonprintable(path) + ": " + std::strerror(errno));
  }
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return quote_input(node.Scalar());
    default:
      return "nothing";
  }
}

std::string Diagnostic::str() const {
  std::string s = escape_nonprintable(file);
  if (line > 0) {
    s += (s.empty() ? "" : ":") + std::to_string(line);
    if (col > 0) {
      s += ":" + std::to_string(col);
    }
  }
  return s + (s.empty() ? "" : ": ") + "error: " + escape_nonprintable(message);
}

SpecReader::SpecReader(std::string_view text, std::string file)
    : m_text(text), m_file(std::move(file)), m_lines(text) {
  m_spec.file = m_file;
}

SourcePos SpecReader::pos(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

void SpecReader::error(const YAML::Mark& mark, std::string message) { error(pos(mark), std::move(message)); }

void SpecReader::error(SourcePos p, std::string message) {
  m_diags.push_back(Diagnostic{m_file, p.line, p.col, escape_nonprintable(message)});
}

Expected<Spec, Diagnostics> SpecReader::read() {
  if (m_text.size() > kMaxSpecBytes) {
    error(SourcePos{1, 1}, "expected a spec file of at most " + std::to_string(kMaxSpecBytes) + " bytes, found " +
                               (m_text.size() == kMaxSpecBytes + 1 ? "more" : std::to_string(m_text.size())));
    return unexpected(m_diags);
  }
  try {
    const auto problem = YamlShape::scan(m_text);
    if (problem) {
      error(problem->mark, problem->message);
    } else {
      const YAML::Node root = YAML::Load(std::string(m_text));
      if (root.IsNull()) {
        error(SourcePos{1, 1}, "expected a mapping of spec fields, found an empty document");
      } else {
        read_document(root);
      }
    }
  } catch (const YAML::Exception& e) {
    error(e.mark, "invalid YAML: " + e.msg);
  }
  if (m_diags.empty()) {
    return m_spec;
  }
  std::stable_sort(m_diags.begin(), m_diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.line != b.line ? a.line < b.line : a.col < b.col;
  });
  if (m_diags.size() > kMaxDiagnostics) {
    m_diags.resize(kMaxDiagnostics);
    m_diags.push_back(Diagnostic{m_file, 0, 0, "too many errors; only the first " + std::to_string(kMaxDiagnostics) + " are shown"});
  }
  return unexpected(m_diags);
}

std::vector<SpecReader::Field> SpecReader::entries(const YAML::Node& map, const std::string& where) {
  std::vector<Field> fields;
  std::map<std::string, SourcePos> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key.Mark(),
            "expected a field name" + (where.empty() ? "" : " " + where) + ", found " + describe_node(key));
      continue;
    }
    const auto [first, inserted] = seen.emplace(key.Scalar(), pos(key.Mark()));
    if (!inserted) {
      error(key.Mark(), "duplicate field " + quote_input(key.Scalar()) + (where.empty() ? "" : " " + where) +
                            " (first defined at " + pos_text(first->second) + ")");
      continue;
    }
    fields.push_back(Field{key, it->second});
  }
  return fields;
}

void SpecReader::read_document(const YAML::Node& root) {
  if (!root.IsMap()) {
    error(root.Mark(), "expected a mapping of spec fields, found " + describe_node(root));
    return;
  }
  std::map<std::string, Field> fields;
  for (const Field& f : entries(root, "")) {
    const std::string& key = f.key.Scalar();
    if (std::find(kTopLevelFields.begin(), kTopLevelFields.end(), key) == kTopLevelFields.end()) {
      std::string hint = did_you_mean(key, kTopLevelFields);
      if (hint.empty()) {
        hint = " (expected one of constants, dtype, head_dim, mask_mod, name, params, score_mod, tensors)";
      }
      error(f.key.Mark(), "unknown field " + quote_input(key) + hint);
      continue;
    }
    fields.emplace(key, f);
  }
  for (const char* required : {"name", "dtype", "head_dim"}) {
    if (fields.count(required) == 0) {
      error(root.Mark(), std::string("missing required field '") + required + "'");
    }
  }
  // Declarations before the mods that use them.
  const std::vector<std::pair<const char*, void (SpecReader::*)(const Field&)>> readers = {
      {"name", &SpecReader::read_name},         {"dtype", &SpecReader::read_dtype},
      {"head_dim", &SpecReader::read_head_dim}, {"constants", &SpecReader::read_constants},
      {"params", &SpecReader::read_params},     {"tensors", &SpecReader::read_tensors}};
  for (const auto& [key, reader] : readers) {
    if (fields.count(key)) {
      (this->*reader)(fields.at(key));
    }
  }
  if (fields.count("score_mod")) {
    read_mod(fields.at("score_mod"), ModKind::Score);
  }
  if (fields.count("mask_mod")) {
    read_mod(fields.at("mask_mod"), ModKind::Mask);
  }
}

void SpecReader::read_name(const Field& f) {
  if (!f.value.IsScalar()) {
    error(f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
          "expected a C identifier for name, found " + describe_node(f.value));
    return;
  }
  const std::string& name = f.value.Scalar();
  const std::string problem = spec_name_problem(name);
  if (!is_identifier(name)) {
    error(f.value.Mark(), "expected a C identifier for name, found " + quote_input(name));
  } else if (name.size() > kMaxNameLength) {
    error(f.value.Mark(), "expected a name of at most " + std::to_string(kMaxNameLength) +
                              " characters, found " + std::to_string(name.size()));
  } else if (is_reserved_word(name)) {
    error(f.value.Mark(), "expected a name that is not a reserved word, found '" + name + "'");
  } else if (!problem.empty()) {
    error(f.value.Mark(), "cannot name a spec '" + name + "': " + problem);
  } else {
    m_spec.name = name;
  }
}

void SpecReader::read_dtype(const Field& f) {
  const std::string found = describe_node(f.value);
  if (f.value.IsScalar() && f.value.Scalar() == "bf16") {
    m_spec.dtype = DType::BF16;
  } else if (f.value.IsScalar() && f.value.Scalar() == "fp16") {
    m_spec.dtype = DType::FP16;
  } else {
    error(f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
          "expected one of bf16, fp16 for dtype, found " + found);
  }
}

void SpecReader::read_head_dim(const Field& f) {
  const std::string s = f.value.IsScalar() ? f.value.Scalar() : "";
  if (s == "64" || s == "128" || s == "256") {
    m_spec.head_dim = std::stoi(s);
  } else {
    error(f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
          "expected one of 64, 128, 256 for head_dim, found " + describe_node(f.value));
  }
}

Expected<Spec, Diagnostics> parse_spec(std::string_view yaml_text, const std::string& file) {
  return SpecReader(yaml_text, file).read();
}

Expected<Spec, Diagnostics> load_spec_file(const std::string& path) {
  auto text = read_bounded(path);
  if (!text) {
    return unexpected(Diagnostics{Diagnostic{path, 0, 0, text.error()}});
  }
  return parse_spec(*text, path);
}

}  // namespace kg::spec

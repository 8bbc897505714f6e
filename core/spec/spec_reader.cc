#include "spec/spec_reader.h"

#include <algorithm>

#include "spec/names.h"
#include "util/file.h"

namespace kg::spec {
namespace {

const std::vector<std::string> kTopLevelFields = {"constants", "dtype",  "head_dim",  "mask_mod",
                                                  "name",      "params", "score_mod", "tensors"};

std::string pos_text(SourcePos p) { return std::to_string(p.line) + ":" + std::to_string(p.col); }

}  // namespace

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "nothing";
  }
}

std::string Diagnostic::str() const {
  std::string s = file;
  if (line > 0) {
    s += (s.empty() ? "" : ":") + std::to_string(line);
    if (col > 0) {
      s += ":" + std::to_string(col);
    }
  }
  return s + (s.empty() ? "" : ": ") + "error: " + message;
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
  m_diags.push_back(Diagnostic{m_file, p.line, p.col, std::move(message)});
}

Expected<Spec, Diagnostics> SpecReader::read() {
  try {
    const std::vector<YAML::Node> docs = YAML::LoadAll(std::string(m_text));
    if (docs.size() > 1) {
      error(docs[1].Mark(), "expected a single YAML document, found " + std::to_string(docs.size()));
    } else if (docs.empty() || docs[0].IsNull()) {
      error(SourcePos{1, 1}, "expected a mapping of spec fields, found an empty document");
    } else {
      read_document(docs[0]);
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
      error(key.Mark(), "duplicate field '" + key.Scalar() + "'" + (where.empty() ? "" : " " + where) +
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
      error(f.key.Mark(), "unknown field '" + key + "'" + hint);
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
  if (!is_identifier(name)) {
    error(f.value.Mark(), "expected a C identifier for name, found '" + name + "'");
  } else if (is_reserved_word(name)) {
    error(f.value.Mark(), "expected a name that is not a reserved word, found '" + name + "'");
  } else if (name.size() > kMaxNameLength) {
    error(f.value.Mark(), "expected a name of at most " + std::to_string(kMaxNameLength) +
                              " characters, found " + std::to_string(name.size()));
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
  auto text = read_file(path);
  if (!text) {
    return unexpected(Diagnostics{Diagnostic{path, 0, 0, text.error().message}});
  }
  return parse_spec(*text, path);
}

}  // namespace kg::spec

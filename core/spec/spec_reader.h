// Internal to spec/: reads a YAML spec into a checked Spec while collecting diagnostics.
// parse_spec() (spec.h) is the public entry point. The work is split by field group:
// spec_reader.cc (document, top-level fields, name/dtype/head_dim), spec_decls.cc (constants,
// params, tensors) and spec_mods.cc (score_mod, mask_mod).
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "spec/source_map.h"
#include "spec/spec.h"
#include "spec/typecheck.h"

namespace kg::spec {

class SpecReader {
 public:
  SpecReader(std::string_view text, std::string file);

  // Every diagnostic found, sorted by position, when there is at least one.
  Expected<Spec, Diagnostics> read();

 private:
  // A top-level field: its key node (for positions) and value.
  struct Field {
    YAML::Node key;
    YAML::Node value;
  };

  void read_document(const YAML::Node& root);
  void read_name(const Field& f);
  void read_dtype(const Field& f);
  void read_head_dim(const Field& f);

  void read_constants(const Field& f);
  void read_params(const Field& f);
  void read_tensors(const Field& f);
  void read_tensor(const std::string& name, const YAML::Node& key, const YAML::Node& value, TensorDecl& t);
  // Checks a constant/param/tensor name (`what` = "constant" ...) and records it. False (and a
  // diagnostic) when it is unusable; the name is then marked broken so uses are not reported.
  bool declare(const std::string& name, const char* what, const YAML::Node& key);

  void read_mod(const Field& f, ModKind kind);

  // The entries of a mapping node, reporting keys that are not scalars and duplicates
  // (`where` names the mapping in messages: "" for the top level, "in tensor 'doc'" ...).
  std::vector<Field> entries(const YAML::Node& map, const std::string& where);

  void error(const YAML::Mark& mark, std::string message);
  void error(SourcePos pos, std::string message);
  static SourcePos pos(const YAML::Mark& mark);

  std::string_view m_text;
  std::string m_file;
  LineIndex m_lines;
  Spec m_spec;
  Diagnostics m_diags;
  std::set<std::string> m_broken;  // declared names whose declaration failed
  std::map<std::string, std::pair<std::string, SourcePos>> m_declared;  // name → (what, where)
};

// "a mapping", "a sequence", "nothing", or the scalar in quotes ('fp32').
std::string describe_node(const YAML::Node& node);

}  // namespace kg::spec

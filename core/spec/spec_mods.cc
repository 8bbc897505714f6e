// score_mod: and mask_mod: of a spec file: locate the text in the file, parse, type-check.
#include "spec/expr_parser.h"
#include "spec/spec_reader.h"
#include "spec/typecheck.h"

namespace kg::spec {

void SpecReader::read_mod(const Field& f, ModKind kind) {
  const std::string field = mod_field_name(kind);
  if (!f.value.IsScalar()) {
    error(f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
          "expected an expression for " + field + ", found " + describe_node(f.value));
    return;
  }
  const std::string& text = f.value.Scalar();
  const ScalarSourceMap map =
      ScalarSourceMap::build(m_text, m_lines, static_cast<size_t>(std::max(0, f.value.Mark().pos)), text);
  auto syntax = parse_mod(text, map);
  if (!syntax) {
    error(syntax.error().pos, syntax.error().message);
    return;
  }
  const CheckContext ctx{m_file, m_spec, m_broken, map};
  auto fn = check_mod(*syntax, kind, ctx, m_diags);
  if (!fn) {
    return;
  }
  (kind == ModKind::Score ? m_spec.score_mod : m_spec.mask_mod) = std::move(*fn);
}

}  // namespace kg::spec

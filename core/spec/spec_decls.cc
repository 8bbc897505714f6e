// constants:, params: and tensors: of a spec file.
#include <charconv>
#include <cmath>
#include <string_view>

#include "spec/lexer.h"
#include "spec/limits.h"
#include "spec/names.h"
#include "spec/printable.h"
#include "spec/spec_reader.h"

namespace kg::spec {
namespace {

std::string pos_text(SourcePos p) { return std::to_string(p.line) + ":" + std::to_string(p.col); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Advances `i` over decimal digits of `s`; returns how many there were.
size_t skip_digits(std::string_view s, size_t& i) {
  const size_t start = i;
  while (i < s.size() && is_digit(s[i])) {
    ++i;
  }
  return i - start;
}

// Whether `s` is [-+]?[0-9]+ (`is_float` false) or [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
// (`is_float` true when it has a '.' or an exponent). A scanner rather than std::regex: libstdc++'s
// regex matcher recurses once per character and overflows the stack on long input.
bool scan_number(std::string_view s, bool* is_float) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    ++i;
  }
  const size_t int_digits = skip_digits(s, i);
  size_t frac_digits = 0;
  *is_float = false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    *is_float = true;
    frac_digits = skip_digits(s, i);
  }
  if (int_digits == 0 && frac_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    *is_float = true;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
      ++i;
    }
    if (skip_digits(s, i) == 0) {
      return false;
    }
  }
  return i == s.size();
}

// A plain YAML scalar as a constant; false when it is not an int, float or bool (or is longer
// than kMaxNumberLength, which no number needs).
bool parse_constant(const std::string& s, ConstantDecl& c) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    c.type = Type::Bool;
    c.bool_value = s[0] == 't' || s[0] == 'T';
    return true;
  }
  bool is_float = false;
  if (s.size() > kMaxNumberLength || !scan_number(s, &is_float)) {
    return false;
  }
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  if (!is_float) {
    c.type = Type::Int;
    const auto r = std::from_chars(begin, s.data() + s.size(), c.int_value);
    return r.ec == std::errc();
  }
  c.type = Type::Float;
  const auto r = std::from_chars(begin, s.data() + s.size(), c.float_value);
  return r.ec == std::errc();
}

// A fixed tensor extent: [1-9][0-9]{0,9}.
bool is_extent(std::string_view s) {
  size_t i = 0;
  return !s.empty() && s[0] != '0' && s.size() <= 10 && skip_digits(s, i) == s.size();
}

struct NamedDim {
  const char* name;
  Dim dim;
};
constexpr NamedDim kNamedDims[] = {{"batch", Dim::Batch},
                                   {"heads_q", Dim::HeadsQ},
                                   {"heads_kv", Dim::HeadsKv},
                                   {"seq_q", Dim::SeqQ},
                                   {"seq_kv", Dim::SeqKv}};

}  // namespace

bool SpecReader::declare(const std::string& name, const char* what, const YAML::Node& key) {
  const std::string cannot = std::string("cannot name a ") + what + " '" + name + "': ";
  std::string problem;
  if (!is_identifier(name)) {
    problem = std::string("expected an identifier for the name of a ") + what + ", found " + quote_input(name);
  } else if (is_builtin_name(name)) {
    problem = cannot + "it is a " + builtin_kind(name);
  } else if (is_reserved_word(name)) {
    problem = cannot + "it is a reserved word";
  } else if (name.size() > kMaxNameLength) {
    problem = std::string("expected a ") + what + " name of at most " + std::to_string(kMaxNameLength) +
              " characters, found " + std::to_string(name.size());
  } else if (const auto it = m_declared.find(name); it != m_declared.end()) {
    problem =
        "'" + name + "' is already defined as a " + it->second.first + " at " + pos_text(it->second.second);
  }
  if (!problem.empty()) {
    error(key.Mark(), problem);
    if (!is_builtin_name(name) && m_declared.count(name) == 0) {
      m_broken.insert(name);
    }
    return false;
  }
  m_declared.emplace(name, std::make_pair(std::string(what), pos(key.Mark())));
  return true;
}

void SpecReader::read_constants(const Field& f) {
  if (!f.value.IsMap()) {
    if (!f.value.IsNull()) {  // `constants:` with nothing under it declares none
      error(f.value.Mark(),
            "expected a mapping of name: value for constants, found " + describe_node(f.value));
    }
    return;
  }
  if (f.value.size() > kMaxConstants) {
    error(f.value.Mark(), "expected at most " + std::to_string(kMaxConstants) + " constants, found " +
                              std::to_string(f.value.size()));
    return;
  }
  for (const Field& c : entries(f.value, "in constants")) {
    const std::string& name = c.key.Scalar();
    if (!declare(name, "constant", c.key)) {
      continue;
    }
    ConstantDecl decl;
    decl.name = name;
    decl.pos = pos(c.key.Mark());
    const std::string expected = "expected an int, float or bool value for constant '" + name + "', found ";
    // A quoted scalar ("64") is a string, whatever it spells.
    if (!c.value.IsScalar() || c.value.Tag() == "!") {
      error(c.value.IsNull() ? c.key.Mark() : c.value.Mark(),
            expected + (c.value.IsScalar() ? "a quoted string" : describe_node(c.value)));
      m_broken.insert(name);
      continue;
    }
    if (!parse_constant(c.value.Scalar(), decl)) {
      error(c.value.Mark(), expected + describe_node(c.value) +
                                (c.value.Scalar().size() > kMaxNumberLength
                                     ? " (a number has at most " + std::to_string(kMaxNumberLength) + " characters)"
                                     : ""));
      m_broken.insert(name);
      continue;
    }
    if (decl.type == Type::Int && (decl.int_value > kMaxIntLiteral || decl.int_value < -kMaxIntLiteral - 1)) {
      error(c.value.Mark(), "expected a 32-bit int for constant '" + name + "', found " + c.value.Scalar());
      m_broken.insert(name);
      continue;
    }
    if (decl.type == Type::Float && !std::isfinite(decl.float_value)) {
      error(c.value.Mark(), "expected a finite float for constant '" + name + "', found " + c.value.Scalar());
      m_broken.insert(name);
      continue;
    }
    m_spec.constants.push_back(decl);
  }
}

void SpecReader::read_params(const Field& f) {
  if (!f.value.IsMap()) {
    if (!f.value.IsNull()) {
      error(f.value.Mark(),
            "expected a mapping of name: int|float for params, found " + describe_node(f.value));
    }
    return;
  }
  if (f.value.size() > kMaxParams) {
    error(f.value.Mark(), "expected at most " + std::to_string(kMaxParams) + " params, found " +
                              std::to_string(f.value.size()));
    return;
  }
  for (const Field& p : entries(f.value, "in params")) {
    const std::string& name = p.key.Scalar();
    if (!declare(name, "param", p.key)) {
      continue;
    }
    ParamDecl decl;
    decl.name = name;
    decl.pos = pos(p.key.Mark());
    if (p.value.IsNull()) {
      decl.type = Type::Float;
    } else if (p.value.IsScalar() && p.value.Scalar() == "int") {
      decl.type = Type::Int;
    } else if (p.value.IsScalar() && p.value.Scalar() == "float") {
      decl.type = Type::Float;
    } else {
      error(p.value.Mark(),
            "expected int or float for param '" + name + "', found " + describe_node(p.value));
      m_broken.insert(name);
      continue;
    }
    m_spec.params.push_back(decl);
  }
}

void SpecReader::read_tensors(const Field& f) {
  if (!f.value.IsMap()) {
    if (!f.value.IsNull()) {
      error(f.value.Mark(),
            "expected a mapping of name: {dtype, shape} for tensors, found " + describe_node(f.value));
    }
    return;
  }
  if (f.value.size() > kMaxTensors) {
    error(f.value.Mark(), "expected at most " + std::to_string(kMaxTensors) + " tensors, found " +
                              std::to_string(f.value.size()));
    return;
  }
  for (const Field& t : entries(f.value, "in tensors")) {
    const std::string& name = t.key.Scalar();
    if (!declare(name, "tensor", t.key)) {
      continue;
    }
    TensorDecl decl;
    decl.name = name;
    decl.pos = pos(t.key.Mark());
    const size_t errors_before = m_diags.size();
    read_tensor(name, t.key, t.value, decl);
    if (m_diags.size() != errors_before) {
      m_broken.insert(name);
      continue;
    }
    m_spec.tensors.push_back(decl);
  }
}

void SpecReader::read_tensor(const std::string& name, const YAML::Node& key, const YAML::Node& value,
                             TensorDecl& t) {
  const std::string of = " of tensor '" + name + "'";
  if (!value.IsMap()) {
    error(value.IsNull() ? key.Mark() : value.Mark(),
          "expected a mapping {dtype: ..., shape: [...]} for tensor '" + name + "', found " +
              describe_node(value));
    return;
  }
  bool has_dtype = false;
  bool has_shape = false;
  for (const Field& f : entries(value, "in tensor '" + name + "'")) {
    const std::string& k = f.key.Scalar();
    if (k == "dtype") {
      has_dtype = true;
      const std::string s = f.value.IsScalar() ? f.value.Scalar() : "";
      if (s == "int32") {
        t.dtype = TensorDType::Int32;
      } else if (s == "int64") {
        t.dtype = TensorDType::Int64;
      } else if (s == "float32") {
        t.dtype = TensorDType::Float32;
      } else {
        error(
            f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
            "expected one of int32, int64, float32 for the dtype" + of + ", found " + describe_node(f.value));
      }
    } else if (k == "shape") {
      has_shape = true;
      if (!f.value.IsSequence() || f.value.size() == 0) {
        error(f.value.IsNull() ? f.key.Mark() : f.value.Mark(),
              "expected a non-empty sequence of dimensions for the shape" + of + ", found " +
                  (f.value.IsSequence() ? std::string("an empty sequence") : describe_node(f.value)));
        continue;
      }
      if (f.value.size() > kMaxTensorRank) {
        error(f.value.Mark(), "expected at most " + std::to_string(kMaxTensorRank) + " dimensions in the shape" +
                                  of + ", found " + std::to_string(f.value.size()));
        continue;
      }
      for (const YAML::Node& d : f.value) {
        TensorDim dim;
        bool ok = false;
        const std::string s = d.IsScalar() ? d.Scalar() : "";
        for (const NamedDim& nd : kNamedDims) {
          if (s == nd.name) {
            dim.dim = nd.dim;
            ok = true;
          }
        }
        if (!ok && is_extent(s)) {
          dim.extent = std::stoll(s);
          ok = dim.extent <= kMaxIntLiteral;
        }
        if (!ok) {
          std::vector<std::string> names;
          for (const NamedDim& nd : kNamedDims) {
            names.push_back(nd.name);
          }
          error(d.Mark(),
                "expected batch, heads_q, heads_kv, seq_q, seq_kv or a positive 32-bit integer in the shape" +
                    of + ", found " + describe_node(d) + (d.IsScalar() ? did_you_mean(s, names) : ""));
          continue;
        }
        t.shape.push_back(dim);
      }
    } else {
      std::string hint = did_you_mean(k, {"dtype", "shape"});
      error(f.key.Mark(), "unknown field " + quote_input(k) + " in tensor '" + name + "'" +
                              (hint.empty() ? " (expected dtype and shape)" : hint));
    }
  }
  for (const auto& [present, field] : {std::pair{has_dtype, "dtype"}, std::pair{has_shape, "shape"}}) {
    if (!present) {
      error(key.Mark(), std::string("missing field '") + field + "' in tensor '" + name + "'");
    }
  }
}

}  // namespace kg::spec

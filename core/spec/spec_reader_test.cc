// Malformed specs: each must fail with exactly this first diagnostic (position and message).
#include <gtest/gtest.h>

#include "spec/spec.h"

namespace kg::spec {
namespace {

constexpr const char* kHead = "name: t\ndtype: bf16\nhead_dim: 128\n";  // lines 1-3

struct BadSpec {
  const char* what;
  std::string yaml;
  std::string first_error;  // Diagnostic::str() of the first diagnostic, file "s.yaml"
};

std::string h(const std::string& rest) { return kHead + rest; }

const std::vector<BadSpec>& bad_specs() {
  static const std::vector<BadSpec> kCases = {
      // --- YAML and document structure.
      {"yaml syntax", "name: [t\n", "s.yaml:2:1: error: invalid YAML: end of sequence flow not found"},
      {"yaml bad indentation", "name: t\n  dtype: bf16\n",
       "s.yaml:2:8: error: invalid YAML: illegal map value"},
      {"empty document", "# nothing here\n",
       "s.yaml:1:1: error: expected a mapping of spec fields, found an empty document"},
      {"not a mapping", "- name\n- dtype\n",
       "s.yaml:1:1: error: expected a mapping of spec fields, found a sequence"},
      {"two documents", h("---\nname: u\n"), "s.yaml:5:1: error: expected a single YAML document, found 2"},
      {"missing name", "dtype: bf16\nhead_dim: 128\n", "s.yaml:1:1: error: missing required field 'name'"},
      {"missing head_dim", "name: t\ndtype: bf16\n", "s.yaml:1:1: error: missing required field 'head_dim'"},
      {"unknown field with suggestion", h("score_mdo: score\n"),
       "s.yaml:4:1: error: unknown field 'score_mdo' (did you mean 'score_mod'?)"},
      {"unknown field", h("author: me\n"),
       "s.yaml:4:1: error: unknown field 'author' (expected one of constants, dtype, head_dim, mask_mod, "
       "name, "
       "params, score_mod, tensors)"},
      {"duplicate field", h("dtype: fp16\n"),
       "s.yaml:4:1: error: duplicate field 'dtype' (first defined at 2:1)"},
      {"non-scalar key", h("[a, b]: 1\n"), "s.yaml:4:1: error: expected a field name, found a sequence"},
      // --- name, dtype, head_dim.
      {"name not identifier", "name: 3abc\ndtype: bf16\nhead_dim: 128\n",
       "s.yaml:1:7: error: expected a C identifier for name, found '3abc'"},
      {"name keyword", "name: int\ndtype: bf16\nhead_dim: 128\n",
       "s.yaml:1:7: error: expected a name that is not a reserved word, found 'int'"},
      {"name too long", "name: " + std::string(65, 'a') + "\ndtype: bf16\nhead_dim: 128\n",
       "s.yaml:1:7: error: expected a name of at most 64 characters, found 65"},
      {"name is a mapping", "name: {a: 1}\ndtype: bf16\nhead_dim: 128\n",
       "s.yaml:1:7: error: expected a C identifier for name, found a mapping"},
      {"bad dtype", "name: t\ndtype: fp32\nhead_dim: 128\n",
       "s.yaml:2:8: error: expected one of bf16, fp16 for dtype, found 'fp32'"},
      {"empty dtype", "name: t\ndtype:\nhead_dim: 128\n",
       "s.yaml:2:1: error: expected one of bf16, fp16 for dtype, found nothing"},
      {"bad head_dim", "name: t\ndtype: bf16\nhead_dim: 96\n",
       "s.yaml:3:11: error: expected one of 64, 128, 256 for head_dim, found '96'"},
      // --- constants, params, tensors.
      {"constant not a number", h("constants:\n  W: abc\n"),
       "s.yaml:5:6: error: expected an int, float or bool value for constant 'W', found 'abc'"},
      {"constant quoted", h("constants:\n  W: \"64\"\n"),
       "s.yaml:5:6: error: expected an int, float or bool value for constant 'W', found a quoted string"},
      {"constant out of range", h("constants:\n  W: 3000000000\n"),
       "s.yaml:5:6: error: expected a 32-bit int for constant 'W', found 3000000000"},
      {"constant shadows builtin", h("constants:\n  q_idx: 3\n"),
       "s.yaml:5:3: error: cannot name a constant 'q_idx': it is a built-in variable"},
      {"constant named like a function", h("constants:\n  exp: 3\n"),
       "s.yaml:5:3: error: cannot name a constant 'exp': it is a built-in function"},
      {"constants is a list", h("constants: [1, 2]\n"),
       "s.yaml:4:12: error: expected a mapping of name: value for constants, found a sequence"},
      {"param bad type", h("params:\n  n: double\n"),
       "s.yaml:5:6: error: expected int or float for param 'n', found 'double'"},
      {"param keyword name", h("params:\n  True: int\n"),
       "s.yaml:5:3: error: cannot name a param 'True': it is a keyword"},
      {"param duplicates constant", h("constants:\n  W: 1\nparams:\n  W: int\n"),
       "s.yaml:7:3: error: 'W' is already defined as a constant at 5:3"},
      {"duplicate param", h("params:\n  n: int\n  n: float\n"),
       "s.yaml:6:3: error: duplicate field 'n' in params (first defined at 5:3)"},
      {"tensor bad dtype", h("tensors:\n  doc: {dtype: int8, shape: [batch, seq_kv]}\n"),
       "s.yaml:5:16: error: expected one of int32, int64, float32 for the dtype of tensor 'doc', found "
       "'int8'"},
      {"tensor bad dim", h("tensors:\n  doc: {dtype: int32, shape: [batch, seq_k]}\n"),
       "s.yaml:5:38: error: expected batch, heads_q, heads_kv, seq_q, seq_kv or a positive 32-bit integer in "
       "the shape of tensor 'doc', found 'seq_k' (did you mean 'seq_q'?)"},
      {"tensor zero dim", h("tensors:\n  doc: {dtype: int32, shape: [0]}\n"),
       "s.yaml:5:31: error: expected batch, heads_q, heads_kv, seq_q, seq_kv or a positive 32-bit integer in "
       "the shape of tensor 'doc', found '0'"},
      {"tensor missing shape", h("tensors:\n  doc: {dtype: int32}\n"),
       "s.yaml:5:3: error: missing field 'shape' in tensor 'doc'"},
      {"tensor empty shape", h("tensors:\n  doc: {dtype: int32, shape: []}\n"),
       "s.yaml:5:30: error: expected a non-empty sequence of dimensions for the shape of tensor 'doc', found "
       "an "
       "empty sequence"},
      {"tensor unknown field", h("tensors:\n  doc: {dtype: int32, shap: [batch]}\n"),
       "s.yaml:5:3: error: missing field 'shape' in tensor 'doc'"},
      {"tensor not a mapping", h("tensors:\n  doc: int32\n"),
       "s.yaml:5:8: error: expected a mapping {dtype: ..., shape: [...]} for tensor 'doc', found 'int32'"},
      // --- expression syntax.
      {"unclosed paren", h("score_mod: (score + 1\n"),
       "s.yaml:4:22: error: expected ')' to close '(' at 4:12, found end of expression"},
      {"missing operand", h("score_mod: score +\n"),
       "s.yaml:4:19: error: expected an expression after '+', found end of expression"},
      {"stray close paren", h("score_mod: score + 1)\n"),
       "s.yaml:4:21: error: expected an operator or end of expression, found ')' without a matching '('"},
      {"unexpected character", h("score_mod: score $ 2\n"), "s.yaml:4:18: error: unexpected character '$'"},
      {"c-style and", h("mask_mod: q_idx >= 0 && kv_idx >= 0\n"),
       "s.yaml:4:22: error: '&&' is not supported; use 'and'"},
      {"bad number", h("score_mod: score * 1e\n"), "s.yaml:4:20: error: invalid number '1e'"},
      {"leading zero", h("score_mod: score * 007\n"),
       "s.yaml:4:20: error: invalid number '007' (leading zeros are not allowed in integers)"},
      {"int literal too large", h("score_mod: score + 4294967296\n"),
       "s.yaml:4:20: error: integer literal 4294967296 is out of range (expected at most 2147483647)"},
      {"if without else", h("score_mod: score if q_idx > 0\n"),
       "s.yaml:4:30: error: expected 'else' after 'if' at 4:18, found end of expression"},
      {"unclosed call", h("score_mod: max(score, 0.0\n"),
       "s.yaml:4:26: error: expected ',' or ')' to close '(' at 4:15, found end of expression"},
      {"unclosed index", h("tensors:\n  doc: {dtype: int32, shape: [seq_kv]}\nmask_mod: doc[kv_idx == 1\n"),
       "s.yaml:6:26: error: expected ',' or ']' to close '[' at 6:14, found end of expression"},
      {"assignment as comparison", h("mask_mod: q_idx = kv_idx\n"),
       "s.yaml:4:11: error: expected an expression as the last line, found binding 'q_idx' (use '==' to "
       "compare)"},
      {"empty mod", h("score_mod: \"\"\n"),
       "s.yaml:4:13: error: expected an expression, found end of expression"},
      {"null mod", h("mask_mod:\n"), "s.yaml:4:1: error: expected an expression for mask_mod, found nothing"},
      {"mod is a list", h("mask_mod: [q_idx]\n"),
       "s.yaml:4:11: error: expected an expression for mask_mod, found a sequence"},
      {"expression before last line", h("score_mod: |\n  score * 2\n  score\n"),
       "s.yaml:5:3: error: expected a binding 'name = expr' (only the last line may be a bare expression), "
       "found "
       "an expression"},
      {"ends with binding", h("score_mod: |\n  x = score\n"),
       "s.yaml:5:3: error: expected an expression as the last line, found binding 'x' (use '==' to compare)"},
      {"operator after expression line", h("score_mod: |\n  x = score score\n  x\n"),
       "s.yaml:5:13: error: expected an operator or end of line, found identifier 'score'"},
      // --- names and types.
      {"unknown variable", h("mask_mod: q_id >= kv_idx\n"),
       "s.yaml:4:11: error: unknown variable 'q_id' (did you mean 'q_idx'?)"},
      {"unknown function", h("score_mod: expp(score)\n"),
       "s.yaml:4:12: error: unknown function 'expp' (did you mean 'exp'?)"},
      {"arity", h("score_mod: max(score)\n"), "s.yaml:4:15: error: expected 2 arguments for 'max', found 1"},
      {"score in mask_mod", h("mask_mod: score > 0\n"),
       "s.yaml:4:11: error: 'score' is not available in mask_mod (expected one of b, h, q_idx, kv_idx)"},
      {"mask type", h("mask_mod: q_idx - kv_idx + 0.5\n"),
       "s.yaml:4:11: error: expected an expression of type bool for mask_mod, found float"},
      {"score type", h("score_mod: score > 0\n"),
       "s.yaml:4:12: error: expected an expression of type int or float for score_mod, found bool"},
      {"bool arithmetic", h("score_mod: score + (q_idx > 0)\n"),
       "s.yaml:4:21: error: expected int or float operands for '+', found bool"},
      {"and on ints", h("mask_mod: q_idx and kv_idx\n"),
       "s.yaml:4:11: error: expected bool operands for 'and', found int"},
      {"not on float", h("score_mod: score if not score else 0.0\n"),
       "s.yaml:4:25: error: expected a bool operand for 'not', found float"},
      {"select condition", h("score_mod: score if q_idx else 0.0\n"),
       "s.yaml:4:21: error: expected a bool condition after 'if', found int"},
      {"select branches", h("score_mod: (score if q_idx > 0 else False) + 1\n"),
       "s.yaml:4:19: error: expected both branches of 'if' to be numbers or both bools, found float and "
       "bool"},
      {"compare bool with int", h("mask_mod: (q_idx > 0) == 1\n"),
       "s.yaml:4:23: error: expected two numbers or two bools for '==', found bool and int"},
      {"negative int exponent", h("score_mod: score * 2 ** -1\n"),
       "s.yaml:4:25: error: expected a non-negative exponent for int ** int, found -1 (use a float base, "
       "e.g. "
       "2.0 ** -1)"},
      {"int division by zero constant", h("constants:\n  Z: 0\nmask_mod: q_idx // Z == 0\n"),
       "s.yaml:6:20: error: expected a non-zero divisor for int '//', found 0"},
      {"wrong index count",
       h("tensors:\n  doc: {dtype: int32, shape: [batch, seq_kv]}\nmask_mod: doc[kv_idx] > 0\n"),
       "s.yaml:6:14: error: expected 2 indices for tensor 'doc', found 1"},
      {"float index", h("tensors:\n  doc: {dtype: int32, shape: [seq_kv]}\nmask_mod: doc[kv_idx / 2] > 0\n"),
       "s.yaml:6:15: error: expected an int index for dimension 1 of tensor 'doc', found float"},
      {"bare tensor", h("tensors:\n  doc: {dtype: int32, shape: [seq_kv]}\nmask_mod: doc > 0\n"),
       "s.yaml:6:11: error: expected an element of tensor 'doc' (doc[...] with 1 index), found the bare "
       "tensor "
       "name"},
      {"index a constant", h("constants:\n  W: 4\nmask_mod: W[q_idx] > 0\n"),
       "s.yaml:6:11: error: 'W' is a constant, not a tensor; it cannot be indexed"},
      {"call a param", h("params:\n  n: int\nmask_mod: n(q_idx) > 0\n"),
       "s.yaml:6:11: error: 'n' is a param, not a function"},
      {"bare function", h("score_mod: score + exp\n"),
       "s.yaml:4:20: error: expected a call exp(...), found the bare function name 'exp'"},
      {"binding shadows builtin", h("score_mod: |\n  h = 2\n  score * h\n"),
       "s.yaml:5:3: error: cannot bind 'h': it is a built-in variable (use '==' to compare)"},
      {"binding redefined", h("score_mod: |\n  x = 2\n  x = 3\n  score * x\n"),
       "s.yaml:6:3: error: binding 'x' is already defined at 5:3"},
      {"binding shadows constant", h("constants:\n  W: 2\nscore_mod: |\n  W = 3\n  score * W\n"),
       "s.yaml:7:3: error: binding 'W' is already defined as a constant at 5:3"},
      {"binding used before definition", h("score_mod: |\n  x = y\n  y = 2\n  score * x\n"),
       "s.yaml:5:7: error: unknown variable 'y' (a binding can only use bindings defined before it)"},
      // --- positions inside block and quoted scalars.
      {"block scalar position",
       h("mask_mod: |\n  # comment line\n  causal = q_idx >= kv_idx\n  causal and kv_idx < q_len\n"),
       "s.yaml:7:23: error: unknown variable 'q_len'"},
      {"indented block scalar", h("mask_mod: |-\n      x = q_idx\n      x >= kv_idx + True\n"),
       "s.yaml:6:21: error: expected int or float operands for '+', found bool"},
      {"double-quoted position", h("mask_mod: \"q_idx >= kvidx\"\n"),
       "s.yaml:4:21: error: unknown variable 'kvidx' (did you mean 'kv_idx'?)"},
      {"single-quoted with escape", h("mask_mod: 'q_idx >= ''a'''\n"),
       "s.yaml:4:21: error: expected an expression, found a string literal (strings are not part of the "
       "language)"},
      {"parenthesised continuation", h("score_mod: |\n  (score +\n     foo)\n"),
       "s.yaml:6:6: error: unknown variable 'foo'"},
  };
  return kCases;
}

TEST(SpecReader, MalformedSpecsReportExactDiagnostics) {
  ASSERT_GE(bad_specs().size(), 40u);
  for (const BadSpec& c : bad_specs()) {
    auto r = parse_spec(c.yaml, "s.yaml");
    if (r) {
      ADD_FAILURE() << c.what << ": parsed without error";
      continue;
    }
    ASSERT_FALSE(r.error().empty()) << c.what;
    EXPECT_EQ(r.error().front().str(), c.first_error) << c.what;
  }
}

TEST(SpecReader, CollectsSeveralDiagnosticsInFileOrder) {
  const std::string yaml =
      "name: 1t\n"
      "dtype: fp8\n"
      "head_dim: 128\n"
      "score_mod: score * exp(q_ix)\n"
      "mask_mod: q_idx >= kv_idx + score\n";
  auto r = parse_spec(yaml, "s.yaml");
  ASSERT_FALSE(r);
  std::vector<std::string> got;
  for (const Diagnostic& d : r.error()) {
    got.push_back(d.str());
  }
  const std::vector<std::string> want = {
      "s.yaml:1:7: error: expected a C identifier for name, found '1t'",
      "s.yaml:2:8: error: expected one of bf16, fp16 for dtype, found 'fp8'",
      "s.yaml:4:24: error: unknown variable 'q_ix' (did you mean 'q_idx'?)",
      "s.yaml:5:29: error: 'score' is not available in mask_mod (expected one of b, h, q_idx, kv_idx)",
  };
  EXPECT_EQ(got, want);
}

TEST(SpecReader, BrokenDeclarationIsNotReportedAgainAtItsUses) {
  auto r = parse_spec(h("constants:\n  W: abc\nmask_mod: q_idx - kv_idx < W\n"), "s.yaml");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().size(), 1u);
  EXPECT_EQ(r.error()[0].line, 5);
}

TEST(SpecReader, DiagnosticFormat) {
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 14, "boom"}).str(), "a.yaml:3:14: error: boom");
  EXPECT_EQ((Diagnostic{"a.yaml", 0, 0, "boom"}).str(), "a.yaml: error: boom");
  EXPECT_EQ((Diagnostic{"", 0, 0, "boom"}).str(), "error: boom");
}

TEST(SpecReader, MissingFile) {
  auto r = load_spec_file("/nonexistent/x.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error()[0].line, 0);
  EXPECT_EQ(r.error()[0].file, "/nonexistent/x.yaml");
}

TEST(SpecReader, ReadsEveryField) {
  const std::string yaml =
      "name: everything\n"
      "dtype: fp16\n"
      "head_dim: 64\n"
      "constants: {A: 2, B2: 0.5, C: true}\n"
      "params:\n"
      "  n: int\n"
      "  x: float\n"
      "  y:\n"
      "tensors:\n"
      "  t: {dtype: float32, shape: [heads_q, 8]}\n"
      "score_mod: score * B2 + t[h, A] if C else score\n"
      "mask_mod: |\n"
      "  d = q_idx - kv_idx  # a comment\n"
      "\n"
      "  0 <= d < n\n";
  auto r = parse_spec(yaml, "s.yaml");
  ASSERT_TRUE(r) << r.error()[0].str();
  const Spec& s = *r;
  EXPECT_EQ(s.name, "everything");
  EXPECT_EQ(s.dtype, DType::FP16);
  EXPECT_EQ(s.head_dim, 64);
  ASSERT_EQ(s.constants.size(), 3u);
  EXPECT_EQ(s.constants[0].type, Type::Int);
  EXPECT_EQ(s.constants[1].type, Type::Float);
  EXPECT_EQ(s.constants[2].type, Type::Bool);
  ASSERT_EQ(s.params.size(), 3u);
  EXPECT_EQ(s.params[0].type, Type::Int);
  EXPECT_EQ(s.params[2].type, Type::Float);
  ASSERT_EQ(s.tensors.size(), 1u);
  EXPECT_EQ(s.tensors[0].dtype, TensorDType::Float32);
  ASSERT_EQ(s.tensors[0].shape.size(), 2u);
  EXPECT_EQ(s.tensors[0].shape[0].dim, Dim::HeadsQ);
  EXPECT_EQ(s.tensors[0].shape[1].extent, 8);
  ASSERT_TRUE(s.mask_mod);
  EXPECT_EQ(s.mask_mod->bindings.size(), 1u);
  EXPECT_EQ(s.mask_mod->result->type, Type::Bool);
  EXPECT_EQ(s.score_mod->result->type, Type::Float);
  EXPECT_EQ(s.mask_mod->bindings[0].pos.line, 13);
  EXPECT_EQ(s.mask_mod->bindings[0].pos.col, 3);
}

TEST(SpecReader, TypesAndPromotionsFollowTheRules) {
  auto type_of = [](const std::string& expr) -> std::string {
    auto r = parse_spec(h("params:\n  n: int\n  x: float\nmask_mod: (" + expr + ") == (" + expr + ")\n"),
                        "s.yaml");
    if (!r) {
      return "error: " + r.error()[0].message;
    }
    const Expr& lhs = *r->mask_mod->result->args[0];
    return lhs.type == Type::Int ? "int" : lhs.type == Type::Float ? "float" : "bool";
  };
  EXPECT_EQ(type_of("q_idx / 2"), "float");
  EXPECT_EQ(type_of("q_idx // 2"), "int");
  EXPECT_EQ(type_of("q_idx % 2"), "int");
  EXPECT_EQ(type_of("q_idx ** 2"), "int");
  EXPECT_EQ(type_of("q_idx ** n"), "int");
  EXPECT_EQ(type_of("min(q_idx, n)"), "int");
  EXPECT_EQ(type_of("floor(x)"), "int");
  EXPECT_EQ(type_of("clamp(q_idx, 0, 3)"), "int");
  EXPECT_EQ(type_of("abs(q_idx - kv_idx)"), "int");
  EXPECT_EQ(type_of("q_idx if True else n"), "int");
}

}  // namespace
}  // namespace kg::spec

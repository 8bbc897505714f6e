// Typed representation of an attention spec (docs/design.md §2).
//
// The reader (spec/spec_reader.cc) builds it from YAML, the type checker fills in every node's type and
// makes int→float promotions explicit (Op::ToFloat), and every later stage — canonical form, key,
// interpreter, code generators — reads only this structure. Positions are kept for diagnostics.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kg::spec {

// 1-based line and column in the spec file; line 0 means "no position".
struct SourcePos {
  int line = 0;
  int col = 0;
};

enum class Type { Int, Float, Bool };

// Element type of q, k, v and out.
enum class DType { BF16, FP16 };

// Element type of a runtime index tensor.
enum class TensorDType { Int32, Int64, Float32 };

enum class Op {
  // Leaves.
  IntLit,    // int_value
  FloatLit,  // float_value
  BoolLit,   // bool_value
  Var,       // var: one of the built-in variables
  Constant,  // index into Spec::constants (compile-time value)
  Param,     // index into Spec::params (runtime scalar)
  Binding,   // index into ModFunction::bindings of the function being evaluated
  // Tensor element: index into Spec::tensors; args = one index expression (Int) per dimension.
  TensorElem,
  // Unary: args[0].
  Neg,
  Not,
  ToFloat,  // implicit int→float promotion inserted by the type checker
  // Binary: args[0] op args[1]. Arithmetic follows Python: `/` is true division (always Float),
  // `//` floors, `%` takes the sign of the divisor, `**` is Float unless both sides are Int.
  Add, Sub, Mul, Div, FloorDiv, Mod, Pow,
  Lt, Le, Gt, Ge, Eq, Ne,
  And, Or,  // Bool operands only; both sides are always evaluated (no side effects exist)
  // args = {condition, value_if_true, value_if_false}  (Python: `a if c else b`)
  Select,
  // Built-in function call: func, args.
  Call,
};

enum class Var { Score, B, H, QIdx, KvIdx };

// abs(x) min(x, y) max(x, y) clamp(x, lo, hi) keep Int when every argument is Int;
// exp exp2 log log2 sqrt tanh take and give Float; floor(Float) gives Int (Python's math.floor).
enum class Func { Abs, Min, Max, Clamp, Exp, Exp2, Log, Log2, Sqrt, Tanh, Floor };

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  Op op = Op::IntLit;
  Type type = Type::Int;  // set by the type checker; valid on every node of a checked Spec
  SourcePos pos;

  int64_t int_value = 0;
  double float_value = 0.0;
  bool bool_value = false;
  Var var = Var::Score;
  Func func = Func::Abs;
  int index = -1;  // Constant, Param, Binding, TensorElem: position in the owning list
  std::vector<ExprPtr> args;
};

// `name = expr` line of a multi-line mod.
struct Binding {
  std::string name;
  ExprPtr value;
  SourcePos pos;
};

// score_mod or mask_mod: bindings evaluated in order, then `result`. A Binding node refers to an
// earlier entry of `bindings` only.
struct ModFunction {
  std::vector<Binding> bindings;
  ExprPtr result;
};

struct ConstantDecl {
  std::string name;
  Type type = Type::Int;  // Int, Float or Bool, from the YAML scalar
  int64_t int_value = 0;
  double float_value = 0.0;
  bool bool_value = false;
  SourcePos pos;
};

struct ParamDecl {
  std::string name;
  Type type = Type::Float;  // Int or Float (YAML: `name: int` / `name: float`, default float)
  SourcePos pos;
};

// A dimension of a tensor's shape: a named runtime size or a fixed extent.
enum class Dim { Batch, HeadsQ, HeadsKv, SeqQ, SeqKv, Fixed };

struct TensorDim {
  Dim dim = Dim::Fixed;
  int64_t extent = 0;  // Fixed only
};

struct TensorDecl {
  std::string name;
  TensorDType dtype = TensorDType::Int32;
  std::vector<TensorDim> shape;  // row-major, contiguous
  SourcePos pos;
};

struct Spec {
  std::string file;  // path as given; diagnostics only, never part of the key
  std::string name;  // C identifier
  DType dtype = DType::BF16;
  int head_dim = 128;
  std::vector<ConstantDecl> constants;  // in file order; the ABI's params/tensors keep file order too
  std::vector<ParamDecl> params;
  std::vector<TensorDecl> tensors;
  // Absent means identity (`score`) / no mask (`True`); the canonical form treats them so.
  std::optional<ModFunction> score_mod;
  std::optional<ModFunction> mask_mod;
};

}  // namespace kg::spec

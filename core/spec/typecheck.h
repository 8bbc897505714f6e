// Name resolution and type checking: SyntaxMod → ModFunction (docs/design.md §2, rules in ast.h).
//
// Rules beyond ast.h's comments:
// - Bool never takes part in arithmetic or ordering; `==`/`!=` compare two bools or two numbers.
// - `int ** int` is Int; a negative exponent that is known at compile time (a literal or a
//   constant, possibly negated) is an error there — write a float base for a float result.
//   `//` and `%` by a compile-time zero of type int are errors too.
// - abs/min/max/clamp give Int when every argument is Int, else Float; exp exp2 log log2 sqrt
//   tanh promote to Float; floor promotes to Float and gives Int.
// - Bindings may use built-ins, constants, params, tensors and earlier bindings of the same
//   mod; their names must not be taken by any of those. The two mods have separate bindings.
// - `score` exists only in score_mod.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "spec/ast.h"
#include "spec/expr_parser.h"
#include "spec/spec.h"

namespace kg::spec {

enum class ModKind { Score, Mask };

struct CheckContext {
  const std::string& file;       // for diagnostics
  const Spec& spec;              // constants, params and tensors already declared
  std::set<std::string> broken;  // names whose declaration failed: uses are not reported again
  const ScalarSourceMap& map;    // offsets of the mod text → file positions
};

// Returns the typed mod, or nullopt after appending at least one diagnostic to `out`.
// A score_mod's result is promoted to Float; a mask_mod's result must be Bool.
std::optional<ModFunction> check_mod(const SyntaxMod& mod, ModKind kind, const CheckContext& ctx,
                                     Diagnostics& out);

// "score_mod" / "mask_mod".
const char* mod_field_name(ModKind kind);

}  // namespace kg::spec

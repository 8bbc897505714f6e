// Tile classification by interval arithmetic over mask_mod (the block-sparsity of the template
// kernel): for a tile of query rows [q_lo, q_hi] × key rows [kv_lo, kv_hi] of one (b, h), is the
// mask false everywhere (Empty: no loads, no MMA), true everywhere (Full: no per-element mask), or
// unknown (Partial)?
//
// The rules live in templates/interval_rules.inc and are shared verbatim by the generated device
// function (emit_classify_tile) and the host evaluator here (classify_tile), which tests use to
// check soundness by brute force. Soundness: Empty ⇒ mask_mod false for every element of the
// tile; Full ⇒ true for every element. Ints are bounded as intervals (// % abs min max clamp ** and
// `if`-`else` included); floats, tensor reads and comparisons of floats are not bounded (unknown).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "spec/ast.h"

namespace kg::codegen {

enum class TileClass { Empty, Partial, Full };

// One tile: batch b and head h exactly, inclusive index ranges, and the runtime params
// (Spec::params order; int params hold whole values).
struct TileQuery {
  int b = 0;
  int h = 0;
  int64_t q_lo = 0, q_hi = 0;
  int64_t kv_lo = 0, kv_hi = 0;
  std::vector<double> params;
  // Element (tensor index, indices) of the spec's int tensors, as the kernel's reader returns it
  // (0 outside the shape); unset: tensor reads are unbounded.
  std::function<int64_t(int, const std::vector<int64_t>&)> tensor;
};

// Index boxes of at most this many elements are read whole by the classifier (exact hull).
inline constexpr long long kTensorScanMax = 256;
// The generated scan reads a box inside the shape this many elements at a time (independent loads).
inline constexpr int kTensorScanBatch = 8;

// Host evaluation with the same rules as the generated kg_classify_tile. No mask_mod: Full.
// classify_tile and emit_classify_tile throw std::invalid_argument for a tree a checked spec cannot
// hold (e.g. one deeper than kMaxExprDepth of spec/limits.h).
TileClass classify_tile(const spec::Spec& spec, const TileQuery& tile);

// The CUDA device function
//   KgTileClass kg_classify_tile(const KgModArgs& ma, int b, int h, int q_lo, int q_hi, int kv_lo, int kv_hi)
// for `spec` (returns kg_tile_full when there is no mask_mod). Needs interval_rules.inc before it.
std::string emit_classify_tile(const spec::Spec& spec);

// Which of spec.tensors kg_classify_tile reads (through kg_iv_tensor<i>_*): the tensors whose tile
// hull tables kg_build_hulls (the spec section) fills, the field hull_<tensor field> of KgModArgs.
std::vector<bool> classify_tile_scans(const spec::Spec& spec);

// The KgModArgs field of tensor `index`'s hull table (KgModArgs::hull_<tensor field>).
std::string hull_field(const spec::Spec& spec, int index);

const char* tile_class_name(TileClass c);  // "Empty", "Partial", "Full"

}  // namespace kg::codegen

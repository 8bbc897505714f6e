// Fuzz target: the spec reader and everything that consumes an accepted spec.
//
// Any input may be refused, but only with diagnostics (each printable, with a message). An accepted
// spec must go through every later stage without an exception: canonical form and key, the
// interpreter and the CPU reference on a tiny shape, the C++ lowering (both math modes), the tile
// classifier (host and emitted) and both Python emitters. A crash, an uncaught exception (abort)
// or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/interval.h"
#include "codegen/lower.h"
#include "codegen/python.h"
#include "reference/cpu_reference.h"
#include "spec/interpret.h"
#include "spec/key.h"
#include "spec/printable.h"
#include "spec/spec.h"

namespace {

using namespace kg;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_spec: %s\n", what.c_str());
  std::abort();
}

// Elements of tensor `t` for the sizes in `rt`; 0 when more than `limit`.
size_t tensor_elements(const spec::TensorDecl& t, const spec::RuntimeValues& rt, size_t limit) {
  size_t n = 1;
  for (const spec::TensorDim& d : t.shape) {
    int64_t size = 0;
    switch (d.dim) {
      case spec::Dim::Batch: size = rt.batch; break;
      case spec::Dim::HeadsQ: size = rt.heads_q; break;
      case spec::Dim::HeadsKv: size = rt.heads_kv; break;
      case spec::Dim::SeqQ: size = rt.seqlen_q; break;
      case spec::Dim::SeqKv: size = rt.seqlen_kv; break;
      case spec::Dim::Fixed: size = d.extent; break;
    }
    if (size <= 0 || static_cast<size_t>(size) > limit || n * static_cast<size_t>(size) > limit) {
      return 0;
    }
    n *= static_cast<size_t>(size);
  }
  return n;
}

void lower_all(const spec::Spec& s, const std::optional<spec::ModFunction>& fn, bool is_score) {
  if (!fn) {
    return;
  }
  for (const codegen::MathMode math : {codegen::MathMode::Fast, codegen::MathMode::Precise}) {
    codegen::LowerContext ctx{&s, &*fn, math, is_score ? "sm_" : "mm_", is_score};
    for (const spec::Binding& b : fn->bindings) {
      (void)codegen::lower_expr(*b.value, ctx);
      (void)codegen::to_source(*b.value, s, &*fn);
    }
    (void)codegen::lower_expr(*fn->result, ctx);
    (void)codegen::to_source(*fn->result, s, &*fn);
  }
  (void)codegen::reads_tensors(*fn);
}

void run_accepted(const spec::Spec& s) {
  const std::string canonical = spec::canonical_form(s);
  if (canonical.empty() || canonical.find("<?>") != std::string::npos) {
    finding("canonical form of an accepted spec is malformed:\n" + canonical);
  }
  if (spec::spec_key(s, "sm_90a").size() != 32) {
    finding("key is not 32 hex digits");
  }

  // Interpreter and CPU reference on a tiny shape, with every tensor allocated and filled.
  reference::CpuProblem p;
  p.rt.batch = 1;
  p.rt.heads_q = 2;
  p.rt.heads_kv = 1;
  p.rt.seqlen_q = 3;
  p.rt.seqlen_kv = 4;
  p.head_dim = 2;
  p.softmax_scale = 0.5;
  for (size_t i = 0; i < s.params.size(); ++i) {
    p.rt.params.push_back(static_cast<double>(i % 3) + (s.params[i].type == spec::Type::Int ? 0.0 : 0.25));
  }
  std::vector<std::vector<int64_t>> storage;  // 8-byte elements: enough for every dtype
  bool tensors_ok = true;
  for (const spec::TensorDecl& t : s.tensors) {
    const size_t n = tensor_elements(t, p.rt, 4096);
    if (n == 0) {
      tensors_ok = false;
      break;
    }
    std::vector<int64_t> buf(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = static_cast<int32_t>(i % 5) - 1;  // includes -1 and indices past the shape
      if (t.dtype == spec::TensorDType::Int64) {
        buf[i] = v;
      } else if (t.dtype == spec::TensorDType::Int32) {
        reinterpret_cast<int32_t*>(buf.data())[i] = v;
      } else {
        reinterpret_cast<float*>(buf.data())[i] = static_cast<float>(v) * 0.5f;
      }
    }
    storage.push_back(std::move(buf));
  }
  if (tensors_ok) {
    for (const auto& buf : storage) {
      p.rt.tensors.push_back(buf.data());
    }
    const size_t q_elems = static_cast<size_t>(p.rt.batch * p.rt.heads_q * p.rt.seqlen_q * p.head_dim);
    const size_t kv_elems = static_cast<size_t>(p.rt.batch * p.rt.heads_kv * p.rt.seqlen_kv * p.head_dim);
    for (size_t i = 0; i < q_elems; ++i) {
      p.q.push_back(static_cast<double>(i % 7) * 0.25 - 0.5);
    }
    for (size_t i = 0; i < kv_elems; ++i) {
      p.k.push_back(static_cast<double>(i % 5) * 0.5 - 1.0);
      p.v.push_back(static_cast<double>(i % 3) - 1.0);
    }
    std::vector<double> out, lse;
    reference::cpu_attention_forward(s, p, out, lse);
  }

  lower_all(s, s.score_mod, true);
  lower_all(s, s.mask_mod, false);
  codegen::TileQuery tile;
  tile.q_lo = 0;
  tile.q_hi = 63;
  tile.kv_lo = 64;
  tile.kv_hi = 127;
  tile.params = p.rt.params;
  (void)codegen::classify_tile(s, tile);
  (void)codegen::emit_classify_tile(s);
  (void)codegen::emit_python_mods(s, codegen::PythonFlavor::Plain);
  (void)codegen::emit_python_mods(s, codegen::PythonFlavor::Torch);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = spec::parse_spec(text, "fuzz.yaml");
  if (!parsed) {
    if (parsed.error().empty()) {
      finding("refused without a diagnostic");
    }
    for (const spec::Diagnostic& d : parsed.error()) {
      // Messages are stored escaped (whoever prints them), and str() escapes the file name too.
      if (d.message.empty() || spec::escape_nonprintable(d.message) != d.message) {
        finding("diagnostic is empty or not printable: " + spec::escape_nonprintable(d.str()));
      }
    }
    return 0;
  }
  run_accepted(*parsed);
  return 0;
}

#include "spec_gen.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kg::lowering_fuzz {
namespace {

enum class T { Int, Float, Bool };

struct Gen {
  std::string text;
  double bound = 0;  // |value| <= bound (Int, Float); unused for Bool
};

constexpr double k_int_limit = 1 << 30;  // int intermediates stay below: no 32-bit overflow
constexpr double k_inf = std::numeric_limits<double>::infinity();

struct Binding {
  std::string name;
  T type;
  double bound;
};

class Generator {
 public:
  Generator(std::mt19937_64& rng, bool score) : m_rng(rng), m_score(score) {}

  std::vector<Binding> bindings;
  std::vector<std::string> probes;
  double max_float = 0;

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(m_rng); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(m_rng) < p; }

  Gen gen(T t, int depth) {
    Gen g = t == T::Int ? gen_int(depth) : t == T::Float ? gen_float(depth) : gen_bool(depth);
    if (t == T::Float) max_float = std::max(max_float, g.bound);
    return g;
  }

 private:
  Gen leaf_int() {
    switch (pick(9)) {
      case 0: return {"b", k_batch};
      case 1: return {"h", k_heads_q};
      case 2: case 3: return {"q_idx", k_seqlen_q};
      case 4: case 5: return {"kv_idx", k_seqlen_kv};
      case 6: {
        const int v = pick(41) - 20;
        return {v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v), static_cast<double>(std::abs(v))};
      }
      case 7: return pick(2) ? Gen{"W", 7} : Gen{"n", 64};  // constant W = 7, int param n in [1, 64]
      default: {
        for (const Binding& b : bindings) {
          if (b.type == T::Int && chance(0.5)) return {b.name, b.bound};
        }
        return {"kv_idx", k_seqlen_kv};
      }
    }
  }
  Gen leaf_float() {
    static const char* lits[] = {"0.5", "1.0", "2.0", "0.1", "3.0", "1e-3", "0.0", "-1.5", "8.0", "0.25"};
    switch (pick(6)) {
      case 0: case 1:
        if (m_score) return {"score", 100};
        [[fallthrough]];
      case 2: {
        const std::string l = lits[pick(10)];
        return {l[0] == '-' ? "(" + l + ")" : l, std::fabs(std::stod(l))};
      }
      case 3: return pick(2) ? Gen{"SCALE", 0.75} : Gen{"alpha", 2};  // constant, float param in [0.1, 2]
      case 4:
        for (const Binding& b : bindings) {
          if (b.type == T::Float && chance(0.5)) return {b.name, b.bound};
        }
        return {"alpha", 2};
      default: return {"(" + leaf_int().text + " + 0.0)", k_seqlen_q};  // an int, as a float
    }
  }
  // An index expression (in or out of the declared range: out-of-range reads give 0).
  std::string index(int depth, int extent) {
    if (chance(0.6)) {
      const Gen g = gen_int(depth + 1);
      return g.text;
    }
    return std::to_string(pick(extent + 2) - 1);
  }
  Gen tensor_int(int depth) {
    if (pick(2)) return {"doc[b, " + index(depth, k_seqlen_kv) + "]", 8};  // int32 [batch, seq_kv], in [0, 8)
    return {"pos[" + index(depth, k_seqlen_q) + "]", 16};                  // int64 [seq_q], in [0, 16)
  }

  Gen gen_int(int depth) {
    if (depth >= 4 || chance(0.25)) return chance(0.15) ? tensor_int(depth) : leaf_int();
    auto a = [&]() { return gen_int(depth + 1); };
    auto bin = [&](const char* op, const Gen& x, const Gen& y, double bound) -> Gen {
      if (bound > k_int_limit) return x;
      return {"(" + x.text + " " + op + " " + y.text + ")", bound};
    };
    switch (pick(14)) {
      case 0: { const Gen x = a(), y = a(); return bin("+", x, y, x.bound + y.bound); }
      case 1: { const Gen x = a(), y = a(); return bin("-", x, y, x.bound + y.bound); }
      case 2: { const Gen x = a(), y = a(); return bin("*", x, y, x.bound * y.bound); }
      case 3: { const Gen x = a(), y = a(); return bin("//", x, y, x.bound); }
      case 4: { const Gen x = a(), y = a(); return bin("%", x, y, y.bound); }
      case 5: {  // x ** e, e in [-2, 3]
        const Gen x = a();
        const Gen e = a();
        const double bound = std::pow(std::max(1.0, x.bound), 3);
        if (bound > k_int_limit) return x;
        return {"(" + x.text + " ** clamp(" + e.text + ", -2, 3))", bound};
      }
      case 6: { const Gen x = a(); return {"(-" + x.text + ")", x.bound}; }
      case 7: { const Gen x = a(); return {"abs(" + x.text + ")", x.bound}; }
      case 8: { const Gen x = a(), y = a(); return {(pick(2) ? "min(" : "max(") + x.text + ", " + y.text + ")", std::max(x.bound, y.bound)}; }
      case 9: { const Gen x = a(), y = a(), z = a(); return {"clamp(" + x.text + ", " + y.text + ", " + z.text + ")", std::max({x.bound, y.bound, z.bound})}; }
      case 10: case 11: {  // floor of a float: the discontinuity the fuzzer is most about
        Gen f = gen_float(depth + 1);
        if (chance(0.4)) {  // log2 of an int: exact at powers of two
          const Gen x = a();
          f = {"log2(abs(" + x.text + ") + 1)", 32};
        }
        std::string arg = f.text;
        if (!(f.bound < 1e6)) arg = "clamp(" + arg + ", -1e6, 1e6)";
        const Gen g{"floor(" + arg + ")", std::min(f.bound, 1e6) + 1};
        if (m_score) probes.push_back(g.text);
        return g;
      }
      case 12: {
        const Gen c = gen_bool(depth + 1);
        const Gen x = a(), y = a();
        return {"(" + x.text + " if " + c.text + " else " + y.text + ")", std::max(x.bound, y.bound)};
      }
      default: return tensor_int(depth);
    }
  }

  Gen gen_float(int depth) {
    if (depth >= 4 || chance(0.25)) {
      if (chance(0.1)) return {"tab[h, " + index(depth, 8) + "]", 2};  // float32 [heads_q, 8], in [-2, 2]
      return leaf_float();
    }
    auto f = [&]() { return gen_float(depth + 1); };
    auto any = [&]() { return chance(0.25) ? gen_int(depth + 1) : gen_float(depth + 1); };
    switch (pick(17)) {
      case 0: { const Gen x = f(), y = any(); return {"(" + x.text + " + " + y.text + ")", x.bound + y.bound}; }
      case 1: { const Gen x = any(), y = f(); return {"(" + x.text + " - " + y.text + ")", x.bound + y.bound}; }
      case 2: { const Gen x = f(), y = any(); return {"(" + x.text + " * " + y.text + ")", x.bound * y.bound}; }
      case 3: {  // true division by something at least 1 in magnitude (tame), ints included
        const Gen x = any(), y = any();
        return {"(" + x.text + " / (abs(" + y.text + ") + 1))", x.bound};
      }
      case 4: { const Gen x = f(), y = any(); return {"(" + x.text + " // (abs(" + y.text + ") + 0.5))", 2 * x.bound + 1}; }
      case 5: { const Gen x = any(), y = f(); return {"(" + x.text + " % (" + y.text + " + 0.5))", y.bound + 0.5}; }
      case 6: {
        const Gen x = f();
        static const char* exps[] = {"2", "0.5", "-1", "3", "1.5"};
        const std::string e = exps[pick(5)];
        const double base = x.bound + 1;
        return {"((abs(" + x.text + ") + 1) ** " + (e[0] == '-' ? "(" + e + ")" : e) + ")", std::pow(base, 3)};
      }
      case 7: {
        const Gen x = f();
        if (x.bound > 20) return {"exp(tanh(" + x.text + "))", 3};
        return {"exp(" + x.text + ")", std::exp(x.bound)};
      }
      case 8: {
        const Gen x = f();
        if (x.bound > 20) return {"exp2(tanh(" + x.text + "))", 2};
        return {"exp2(" + x.text + ")", std::exp2(x.bound)};
      }
      case 9: { const Gen x = any(); return {"log(abs(" + x.text + ") + 1)", std::log(x.bound + 1) + 1}; }
      case 10: { const Gen x = any(); return {"log2(abs(" + x.text + ") + 1)", std::log2(x.bound + 1) + 1}; }
      case 11: { const Gen x = any(); return {"sqrt(abs(" + x.text + "))", std::sqrt(x.bound)}; }
      case 12: { const Gen x = f(); return {"tanh(" + x.text + ")", 1}; }
      case 13: { const Gen x = f(); return {"abs(" + x.text + ")", x.bound}; }
      case 14: {
        const Gen x = f(), y = any();
        return {(pick(2) ? "min(" : "max(") + x.text + ", " + y.text + ")", std::max(x.bound, y.bound)};
      }
      case 15: {
        const Gen x = f(), y = any(), z = any();
        return {"clamp(" + x.text + ", " + y.text + ", " + z.text + ")", std::max({x.bound, y.bound, z.bound})};
      }
      default: {
        const Gen c = gen_bool(depth + 1);
        const Gen x = f(), y = any();
        return {"(" + x.text + " if " + c.text + " else " + y.text + ")", std::max(x.bound, y.bound)};
      }
    }
  }

  Gen gen_bool(int depth) {
    static const char* cmps[] = {"<", "<=", ">", ">=", "==", "!="};
    if (depth >= 4) return {chance(0.5) ? "(q_idx >= kv_idx)" : "True"};
    Gen g;
    switch (pick(8)) {
      case 0: case 1: {
        const Gen x = gen_int(depth + 1), y = gen_int(depth + 1);
        g = {"(" + x.text + " " + cmps[pick(6)] + " " + y.text + ")"};
        break;
      }
      case 2: case 3: {  // float comparisons: evaluated in double by the template
        const Gen x = gen_float(depth + 1);
        const Gen y = chance(0.5) ? gen_float(depth + 1) : gen_int(depth + 1);
        g = {"(" + x.text + " " + cmps[pick(6)] + " " + y.text + ")"};
        break;
      }
      case 4: g = {"(" + gen_bool(depth + 1).text + (pick(2) ? " and " : " or ") + gen_bool(depth + 1).text + ")"}; break;
      case 5: g = {"(not " + gen_bool(depth + 1).text + ")"}; break;
      case 6: g = {"(" + gen_bool(depth + 1).text + (pick(2) ? " == " : " != ") + gen_bool(depth + 1).text + ")"}; break;
      default: {
        const Gen c = gen_bool(depth + 1);
        g = {"(" + gen_bool(depth + 1).text + " if " + c.text + " else " + gen_bool(depth + 1).text + ")"};
        break;
      }
    }
    if (m_score) probes.push_back("(1 if " + g.text + " else 0)");
    return g;
  }

  std::mt19937_64& m_rng;
  bool m_score;
};

}  // namespace

GeneratedSpec generate_spec(std::mt19937_64& rng, const std::string& name) {
  GeneratedSpec out;
  out.name = name;
  out.decls =
      "dtype: bf16\nhead_dim: 64\n"
      "constants:\n  W: 7\n  SCALE: 0.75\n"
      "params:\n  n: int\n  alpha: float\n"
      "tensors:\n"
      "  doc: {dtype: int32, shape: [batch, seq_kv]}\n"
      "  pos: {dtype: int64, shape: [seq_q]}\n"
      "  tab: {dtype: float32, shape: [heads_q, 8]}\n";
  std::uniform_int_distribution<int> coin(0, 3);
  if (coin(rng) != 0) {
    Generator g(rng, true);
    const int n_bindings = std::uniform_int_distribution<int>(0, 2)(rng);
    for (int i = 0; i < n_bindings; ++i) {
      const T t = i % 2 == 0 ? T::Int : T::Float;
      const Gen v = g.gen(t, 1);
      const std::string bname = "v" + std::to_string(i);
      out.score_bindings.push_back(bname + " = " + v.text);
      g.bindings.push_back({bname, t, v.bound});
    }
    const Gen r = g.gen(T::Float, 1);
    out.score_result = r.text;
    out.score_probes = g.probes;
    out.float_bound = g.max_float;
  }
  if (coin(rng) != 0) {
    Generator g(rng, false);
    out.mask_text = g.gen(T::Bool, 1).text;
  }
  out.yaml = "name: " + name + "\n" + out.decls;
  if (!out.score_result.empty()) {
    out.yaml += "score_mod: |\n";
    for (const auto& b : out.score_bindings) out.yaml += "  " + b + "\n";
    out.yaml += "  " + out.score_result + "\n";
  }
  if (!out.mask_text.empty()) out.yaml += "mask_mod: " + out.mask_text + "\n";
  return out;
}

std::string probe_spec_yaml(const GeneratedSpec& spec, size_t probe, const std::string& name) {
  std::string y = "name: " + name + "\n" + spec.decls + "score_mod: |\n";
  for (const auto& b : spec.score_bindings) y += "  " + b + "\n";
  y += "  " + spec.score_probes.at(probe) + "\n";
  return y;
}

}  // namespace kg::lowering_fuzz

// The GPU part of the differential fuzzer (docs/verifier.md, "Differential fuzzer"):
// `kg_gpu_tests --fuzz-dir DIR` runs the random specs that kg_gpu_fuzz_gen
// (tests/lowering/gpu_fuzz_gen.cc) wrote and compiled into DIR.
#pragma once

#include <cstdint>
#include <string>

namespace kg::gpu_test {

// For every spec of DIR/manifest.txt: dlopens <name>_template.so and <name>_reference.so, runs
// both kernels on a few small random shapes (ragged lengths, GQA and MQA, Sq != Skv, batch > 1,
// every layout, LSE on and off) and checks
//   reference vs the CPU interpreter (reference::cpu_attention_forward): out within 1e-4 of the
//     output's scale plus half an ulp, LSE within 1e-4 + 1e-4·|lse| (the bounds of --reference-vs-cpu);
//   template vs reference: the verifier's default_tolerance, plus the fp32 error of the template's
//     mods (2·max|v|·1e-5·(1 + B), B the spec's generated bound);
//   masks exactly: LSE -inf (and out exactly 0) on precisely the rows the interpreter finds fully
//     masked, for both kernels, and kg_<name>_reference_count_kept equal to the interpreter's count;
//   guards and padding untouched, inputs unchanged, two template runs bit-identical.
// Rows whose score_mod is ill-conditioned at the inputs (an fp32 rounding of the score moves the
// mod by more than 16 times as much, e.g. a floor next to its jump) are not compared by value;
// other tolerances grow with the row's amplification (at most 16×). Rows the interpreter makes
// NaN are not compared. One line per spec, a summary, and for a disagreement the spec's YAML and
// the worst element. `seed` seeds inputs and shapes.
// The directory is loaded (specs checked, libraries dlopened) before the device is looked for.
// Returns 0 all agree, 1 a disagreement (or a CUDA error), 2 a directory, spec or library that
// does not load, 77 no CUDA device.
int run_fuzz_dir(const std::string& dir, uint64_t seed);

}  // namespace kg::gpu_test

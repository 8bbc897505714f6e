// kg_spec_python — prints a spec's score_mod / mask_mod as Python (core/codegen/python.h).
//
//   kg_spec_python <spec.yaml> [plain|torch] [-o <out.py>]
//
// plain (default): scalar Python, as prompts show it. torch: a FlexAttention module with
// make_mods(params, tensors) and the spec's metadata (flex_check.py, bench/attention_bench.py).
// With -o the file is written atomically, and only when its content changed.
// Exit status: 0 done, 1 the spec has errors or the output cannot be written, 2 bad usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "codegen/python.h"
#include "spec/spec.h"
#include "util/file.h"

int main(int argc, char** argv) {
  std::string spec_path, out_path, flavor_name = "plain";
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) {
      out_path = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: kg_spec_python <spec.yaml> [plain|torch] [-o <out.py>]\n";
      return 0;
    } else if (positional == 0) {
      spec_path = a;
      ++positional;
    } else if (positional == 1) {
      flavor_name = a;
      ++positional;
    } else {
      std::cerr << "kg_spec_python: unexpected argument '" << a << "'\n";
      return 2;
    }
  }
  if (spec_path.empty() || (flavor_name != "plain" && flavor_name != "torch")) {
    std::cerr << "usage: kg_spec_python <spec.yaml> [plain|torch] [-o <out.py>]\n";
    return 2;
  }
  auto spec = kg::spec::load_spec_file(spec_path);
  if (!spec) {
    for (const auto& d : spec.error()) {
      std::cerr << d.str() << "\n";
    }
    return 1;
  }
  const auto flavor = flavor_name == "torch" ? kg::codegen::PythonFlavor::Torch : kg::codegen::PythonFlavor::Plain;
  const std::string text = kg::codegen::emit_python_mods(*spec, flavor);
  if (out_path.empty()) {
    std::cout << text;
    return 0;
  }
  auto written = kg::write_file_if_changed(out_path, text);
  if (!written) {
    std::cerr << "kg_spec_python: " << written.error().message << "\n";
    return 1;
  }
  return 0;
}

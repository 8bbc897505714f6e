// kg_verify_expect — runs the verifier on one kernel and checks the verdict it should reach:
// the adversarial suite (tests/verify/adversarial/*.cu, each naming its expected finding) and the
// positive controls.
//
//   kg_verify_expect --spec S.yaml --kernel K.cu --expect KIND[|KIND...] [--stage STAGE] [--no-run] [--timeout S]
//                    [--skip-source-checks]   (no static checks: the run-time defences alone)
//     KIND: a finding kind (docs/verifier.md) that must be the report's first rejecting finding,
//           or `pass` (the kernel must pass).
//
// Exit status: 0 as expected; 1 not as expected (the report summary says what happened);
// 77 the verdict needs a GPU and there is none (CTest: skipped); 2 bad usage or the verifier
// could not work. The runner is $KERNELGEN_RUNNER (CTest sets it), the work directory
// $KERNELGEN_VERIFY_DIR.
#include <iostream>
#include <string>

#include "spec/spec.h"
#include "util/file.h"
#include "config/config.h"
#include "verify/verify.h"

extern char** environ;

int main(int argc, char** argv) {
  using namespace kg;
  std::string spec_file, kernel_file, expect, stage;
  verify::VerifyOptions opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--spec") {
      spec_file = value();
    } else if (a == "--kernel") {
      kernel_file = value();
    } else if (a == "--expect") {
      expect = value();
    } else if (a == "--stage") {
      stage = value();
    } else if (a == "--no-run") {
      opt.run = false;
    } else if (a == "--skip-source-checks") {
      opt.skip_source_checks = true;
    } else if (a == "--timeout") {
      opt.limits.wall_limit_s = std::stod(value());
    } else {
      std::cerr << "kg_verify_expect: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (spec_file.empty() || kernel_file.empty() || expect.empty()) {
    std::cerr << "usage: kg_verify_expect --spec S.yaml --kernel K.cu --expect KIND|pass [--stage S] [--no-run]\n";
    return 2;
  }
  auto yaml = read_file(spec_file);
  auto source = read_file(kernel_file);
  if (!yaml || !source) {
    std::cerr << "kg_verify_expect: " << (!yaml ? yaml.error().message : source.error().message) << "\n";
    return 2;
  }
  auto spec = spec::parse_spec(*yaml, spec_file);
  if (!spec) {
    std::cerr << spec.error().front().str() << "\n";
    return 2;
  }
  opt.spec_file = spec_file;
  auto settings = config::Config::load(config::environment_from(environ));
  if (!settings) {
    std::cerr << "kg_verify_expect: " << settings.error().message << "\n";
    return 2;
  }
  auto report = verify::verify_kernel(*spec, *yaml, *source, opt, verify::verifier_setup(*settings));
  if (!report) {
    std::cerr << "kg_verify_expect: the verifier could not work: " << report.error().message << "\n";
    return 2;
  }
  std::cout << verify::report_summary(*report);
  const verify::Finding* first = report->first_rejection();
  if (expect == "pass") {
    if (report->verdict == verify::Verdict::Incomplete && opt.run) {
      std::cout << "SKIP: no CUDA device to run on\n";
      return 77;
    }
    const bool ok = report->passed() || (!opt.run && report->verdict == verify::Verdict::Incomplete);
    std::cout << (ok ? "OK: passed as expected\n" : "FAIL: expected the kernel to pass\n");
    return ok ? 0 : 1;
  }
  if (first == nullptr) {
    if (report->verdict == verify::Verdict::Incomplete) {
      std::cout << "SKIP: the expected finding needs a GPU run (no CUDA device)\n";
      return 77;
    }
    std::cout << "FAIL: expected finding " << expect << ", but the kernel " << verify::verdict_name(report->verdict) << "\n";
    return 1;
  }
  // `--expect a|b`: either finding is right (a kernel can be wrong in more than one visible way).
  bool kind_ok = false;
  for (size_t start = 0; start <= expect.size();) {
    const size_t bar = expect.find('|', start);
    const size_t end = bar == std::string::npos ? expect.size() : bar;
    kind_ok = kind_ok || verify::finding_kind_name(first->kind) == expect.substr(start, end - start);
    start = end + 1;
  }
  const bool ok = kind_ok && (stage.empty() || stage == "-" || first->stage == stage);
  std::cout << (ok ? "OK: " : "FAIL: expected ") << expect << (stage.empty() ? "" : " [" + stage + "]")
            << (ok ? " found" : ", first finding was " + std::string(verify::finding_kind_name(first->kind)) + " [" + first->stage + "]") << "\n";
  return ok ? 0 : 1;
}

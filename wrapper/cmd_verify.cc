// kernelgen verify
#include <iostream>

#include "commands.h"
#include "generate/template_generator.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/file.h"
#include "util/log.h"
#include "verify/verify.h"

namespace kg::cli {

int run_verify(const GlobalOptions& global, const VerifyOptions& opts) {
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  if (opts.kernel_file.empty() == !opts.use_template) {
    KG_LOG_ERROR("give exactly one of --kernel FILE and --template");
    return kExitUsage;
  }
  if (opts.repeat < 1) {
    KG_LOG_ERROR("--repeat must be at least 1");
    return kExitUsage;
  }
  auto yaml = read_file(opts.spec_file);
  if (!yaml) {
    KG_LOG_ERROR(yaml.error().message);
    return kExitFailure;
  }
  auto spec = spec::parse_spec(*yaml, opts.spec_file);
  if (!spec) {
    for (const spec::Diagnostic& d : spec.error()) {
      std::cerr << d.str() << "\n";
    }
    return kExitFailure;
  }
  std::string source;
  if (opts.use_template) {
    generate::TemplateGenerator generator;
    auto made = generator.generate(generate::Request{&*spec, spec::spec_key(*spec, *arch), *arch, {}});
    if (!made) {
      KG_LOG_ERROR(opts.spec_file << ": " << made.error().message);
      return kExitFailure;
    }
    source = std::move(made->source);
  } else {
    auto text = read_file(opts.kernel_file);
    if (!text) {
      KG_LOG_ERROR(text.error().message);
      return kExitFailure;
    }
    source = std::move(*text);
  }

  verify::VerifyOptions vo;
  vo.arch = *arch;
  vo.spec_file = opts.spec_file;
  vo.work_dir = opts.work_dir;
  vo.seed = opts.seed;
  vo.run = !opts.no_run;
  vo.settings.timing = !opts.no_timing;
  vo.limits.wall_limit_s = opts.timeout_s;
  vo.limits.keep_dir = opts.keep;
  const verify::VerifierSetup setup = verify::verifier_setup(*global.config);

  verify::VerifyReport last;
  int passed = 0;
  for (int n = 1; n <= opts.repeat; ++n) {
    if (n > 1) {
      vo.seed = opts.seed ? opts.seed + n - 1 : 0;
    }
    auto report = verify::verify_kernel(*spec, *yaml, source, vo, setup);
    if (!report) {
      KG_LOG_ERROR("the verifier could not run: " << report.error().message
                                                   << " (rerun with KERNELGEN_LOG=debug for details)");
      return kExitVerifierError;
    }
    last = std::move(*report);
    if (opts.repeat > 1) {
      std::cerr << "kernelgen verify: " << n << "/" << opts.repeat << ": " << verify::verdict_name(last.verdict) << " ("
                << last.total_seconds << " s, seed " << last.seed << ")";
      if (last.timing.measured) {
        std::cerr << ", " << last.timing.median_ms << " ms, " << last.timing.tflops << " TFLOP/s";
      }
      std::cerr << "\n";
    }
    if (!opts.report_file.empty()) {
      auto w = write_file_atomic(opts.report_file, verify::report_json_text(last));
      if (!w) {
        KG_LOG_ERROR(w.error().message);
        return kExitFailure;
      }
    }
    if (!last.passed()) {
      break;
    }
    ++passed;
  }
  if (opts.json) {
    std::cout << verify::report_json_text(last);
  } else {
    std::cout << verify::report_summary(last);
    if (opts.repeat > 1) {
      std::cout << passed << " of " << opts.repeat << " consecutive verifications passed\n";
    }
  }
  if (last.passed()) {
    return kExitOk;
  }
  if (last.verdict == verify::Verdict::Incomplete) {
    return opts.no_run ? kExitOk : kExitNoGpu;
  }
  return kExitFailure;
}

}  // namespace kg::cli

// kernelgen emit
#include <cstdio>
#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "emit_client.h"
#include "emit/emit.h"
#include "config/config.h"
#include "generate/template_generator.h"
#include "loop/judge.h"
#include "loop/loop.h"
#include "loop/setup.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "util/file.h"
#include "util/log.h"
#include "verify/emit_gate.h"

namespace kg::cli {

namespace {

constexpr const char* kMoreDetail = " (rerun with KERNELGEN_LOG=debug for details)";

}  // namespace

int run_emit(const GlobalOptions& global, const EmitOptions& opts) {
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  auto spec = spec::load_spec_file(opts.spec_file);
  if (!spec) {
    for (const spec::Diagnostic& d : spec.error()) {
      std::cerr << d.str() << "\n";
    }
    return kExitFailure;
  }
  if (!opts.expect_name.empty() && spec->name != opts.expect_name) {
    KG_LOG_ERROR(opts.spec_file << ": spec name '" << spec->name << "' differs from '" << opts.expect_name
                                << "', the name the build expects (kernelgen_add_attention reads it at "
                                   "configure time: re-run cmake)");
    return kExitFailure;
  }
  // Refused at the door, before the cache or the daemon is asked: a target no generator can make.
  generate::TemplateGenerator generator;
  if (auto ok = generator.check(*spec, *arch); !ok) {
    KG_LOG_ERROR(opts.spec_file << ": --arch " << *arch << ": " << ok.error().message);
    return kExitFailure;
  }

  if (!in_process_generation(global, opts)) {
    return emit_with_daemon(global, opts, *spec, *arch);
  }
  // --no-daemon: generate and store in this process (the cache is written here, not by kernelgend).
  const std::string& dir = global.cache_dir;  // from the configuration (main.cc)
  auto cache = cache::LocalCache::open(dir);
  if (!cache) {
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message << kMoreDetail);
    return kExitFailure;
  }

  emit::EmitRequest req;
  req.spec = &*spec;
  req.arch = *arch;
  req.out_dir = opts.out_dir;
  req.reference = opts.reference;
  req.touch = opts.touch;
  if (!opts.no_verify) {
    auto yaml = read_file(opts.spec_file);
    if (!yaml) {
      KG_LOG_ERROR(yaml.error().message);
      return kExitFailure;
    }
    req.verify = verify::emit_verifier(verify::verifier_setup(*global.config), *yaml, opts.spec_file, *arch);
  }
  // The closed loop on a miss, as kernelgend runs it, when an endpoint is configured.
  std::shared_ptr<generate::Generator> loop;
  const double budget = opts.budget.empty() ? -1 : config::parse_duration(opts.budget).value_or(-1);
  if (!opts.no_verify && budget != 0) {
    if (auto endpoint = loop::endpoint_from_config(*global.config)) {
      loop = std::make_shared<loop::LoopGenerator>(*endpoint, loop::verifier_judges(verify::verifier_setup(*global.config)),
                                                   std::make_shared<generate::TemplateGenerator>(),
                                                   loop::loop_options(*global.config));
      auto yaml = read_file(opts.spec_file);
      req.context.spec_yaml = yaml ? *yaml : "";
      req.context.spec_file = opts.spec_file;
      req.context.budget_s = budget;
      req.context.progress = [name = spec->name](const std::string&, const std::string& message) {
        std::fprintf(stderr, "kernelgen: %s: %s\n", name.c_str(), message.c_str());
      };
    } else if (endpoint.error().kind != Failure::Kind::NotFound) {
      KG_LOG_ERROR(endpoint.error().message);
      return kExitFailure;
    } else if (budget > 0) {
      KG_LOG_INFO(spec->name << ": the template kernel stands: " << endpoint.error().message);
    }
  }
  storage::LocalStorage storage(*cache);
  auto result = emit::emit_kernel(storage, loop ? *loop : static_cast<generate::Generator&>(generator), req);
  if (!result) {
    KG_LOG_ERROR(opts.spec_file << ": " << result.error().message << kMoreDetail);
    return kExitFailure;
  }
  KG_LOG_INFO(spec->name << ": " << (result->cache_hit ? "cache hit" : "generated") << ", key " << result->key
                         << ", " << cache::verification_name(result->verification) << ", " << result->written.size() << " of "
                         << result->outputs.size() << " files written");
  return kExitOk;
}

}  // namespace kg::cli

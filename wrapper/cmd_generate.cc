// kernelgen generate: the closed loop for specs, in this process (docs/design.md §5).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "config/config.h"
#include "emit/emit.h"
#include "generate/template_generator.h"
#include "loop/history.h"
#include "loop/judge.h"
#include "loop/loop.h"
#include "loop/setup.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "util/file.h"
#include "util/log.h"
#include "verify/runner.h"
#include "verify/emit_gate.h"
#include "verify/verify.h"

namespace kg::cli {

namespace {

// Set by the first SIGINT/SIGTERM: the loop ends its round's model calls and compiles and keeps
// what it has. A second signal ends the process (the default action, restored by the first).
std::atomic<bool> g_cancel{false};

void on_signal(int sig) {
  g_cancel.store(true);
  ::signal(sig, SIG_DFL);
}

// Whether a CUDA device can run candidates: the runner's probe, as emit_verifier does.
Expected<bool, Failure> have_gpu(const verify::VerifierSetup& setup) {
  if (setup.runner.empty()) {
    return false;
  }
  verify::SandboxRunner runner(setup.runner, setup.work_dir, setup.env);
  verify::RunLimits limits;
  limits.private_network = setup.private_network;
  return runner.probe(limits);
}

void print_summary(const std::string& spec_name, const loop::History& h) {
  std::fprintf(stderr, "kernelgen: %s: %zu rounds, %zu candidates in %.0f s (%s): ", spec_name.c_str(),
               h.rounds.size(), h.candidates.size(), h.total_s, h.stop_reason.c_str());
  if (h.best >= 0) {
    std::fprintf(stderr, "an LLM kernel at %.3f ms, %.2fx the template (%.3f ms)\n", h.best_ms, h.speedup,
                 h.template_ms);
  } else if (!h.run) {
    int compiled = 0;
    for (const loop::Candidate& c : h.candidates) {
      compiled += c.outcome == loop::Outcome::Compiled;
    }
    std::fprintf(stderr, "%d compiled (nothing ran: --no-run)\n", compiled);
  } else {
    std::fprintf(stderr, "no candidate beat the template kernel (%.3f ms)\n", h.template_ms);
  }
}

}  // namespace

int run_generate(const GlobalOptions& global, const GenerateOptions& opts) {
  const config::Config& config = *global.config;
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  auto endpoint = loop::endpoint_from_config(config);
  if (!endpoint) {
    if (endpoint.error().kind == Failure::Kind::NotFound) {
      KG_LOG_ERROR("kernelgen generate needs an LLM: " << endpoint.error().message
                                                       << ". Without one, the template kernels stand "
                                                          "(kernelgen emit).");
    } else {
      KG_LOG_ERROR(endpoint.error().message);
    }
    return kExitFailure;
  }
  const verify::VerifierSetup setup = verify::verifier_setup(config);
  loop::LoopOptions options = loop::loop_options(config);
  options.run = !opts.no_run;
  if (options.run) {
    auto gpu = have_gpu(setup);
    if (!gpu) {
      KG_LOG_ERROR("cannot look for a CUDA device: " << gpu.error().message);
      return kExitVerifierError;
    }
    if (!*gpu) {
      KG_LOG_ERROR("kernelgen generate needs a CUDA GPU to verify and time candidates, and found none. "
                   "`kernelgen generate --no-run` runs the loop with static and compile checks only (and "
                   "caches nothing), to check the endpoint and the prompts on any machine.");
      return kExitNoGpu;
    }
  }
  loop::LoopGenerator generator(*endpoint, loop::verifier_judges(setup),
                                std::make_shared<generate::TemplateGenerator>(), options);

  std::optional<cache::LocalCache> cache;
  if (options.run) {
    auto opened = cache::LocalCache::open(global.cache_dir);
    if (!opened) {
      KG_LOG_ERROR("cannot open the kernel cache: " << opened.error().message);
      return kExitFailure;
    }
    cache.emplace(std::move(*opened));
  }

  ::signal(SIGINT, on_signal);
  ::signal(SIGTERM, on_signal);
  int status = kExitOk;
  for (const std::string& file : opts.spec_files) {
    if (g_cancel.load()) {
      KG_LOG_ERROR("interrupted: " << file << " and the specs after it were not generated");
      return kExitFailure;
    }
    auto spec = spec::load_spec_file(file);
    if (!spec) {
      for (const spec::Diagnostic& d : spec.error()) {
        std::cerr << d.str() << "\n";
      }
      status = kExitFailure;
      continue;
    }
    if (auto ok = generator.check(*spec, *arch); !ok) {
      KG_LOG_ERROR(file << ": --arch " << *arch << ": " << ok.error().message);
      status = kExitFailure;
      continue;
    }
    auto yaml = read_file(file);
    if (!yaml) {
      KG_LOG_ERROR(yaml.error().message);
      status = kExitFailure;
      continue;
    }
    const std::string key = spec::spec_key(*spec, *arch);
    generate::Context ctx;
    ctx.spec_yaml = *yaml;
    ctx.spec_file = file;
    ctx.cancel = &g_cancel;
    ctx.progress = [name = spec->name](const std::string&, const std::string& message) {
      std::fprintf(stderr, "kernelgen: %s: %s\n", name.c_str(), message.c_str());
    };
    std::fprintf(stderr, "kernelgen: %s: the closed loop with %s, %d samples per round, budget %.0f s%s\n",
                 spec->name.c_str(), (*endpoint)->describe().c_str(), options.samples, options.budget_s,
                 options.run ? "" : ", static and compile checks only (--no-run)");

    if (!options.run) {
      auto made = generator.generate(generate::Request{&*spec, key, *arch, ctx});
      if (!made) {
        KG_LOG_ERROR(file << ": " << made.error().message);
        status = kExitFailure;
        continue;
      }
      auto h = loop::parse_history(made->history_json);
      if (h) {
        print_summary(spec->name, *h);
      }
      const std::string out = opts.history_file.empty() ? "kernelgen-history-" + spec->name + ".json"
                              : opts.spec_files.size() == 1 ? opts.history_file
                                                            : opts.history_file + "." + spec->name;
      if (auto wrote = write_file_atomic(out, made->history_json); !wrote) {
        KG_LOG_ERROR(wrote.error().message);
        status = kExitFailure;
        continue;
      }
      std::fprintf(stderr, "kernelgen: %s: nothing cached (--no-run); the loop's history is in %s "
                   "(kernelgen report --history %s)\n", spec->name.c_str(), out.c_str(), out.c_str());
      continue;
    }

    if (!opts.force) {
      if (auto existing = cache->get_record(key); existing && existing->generator.rfind("llm:", 0) == 0) {
        std::fprintf(stderr, "kernelgen: %s: already generated by the loop (%s, key %s); --force runs it again\n",
                     spec->name.c_str(), existing->generator.c_str(), key.c_str());
        continue;
      }
    }
    emit::EmitRequest req;
    req.spec = &*spec;
    req.arch = *arch;
    req.replace = true;
    req.context = ctx;
    req.context.budget_s = options.budget_s;
    req.verify = verify::emit_verifier(setup, *yaml, file, *arch);  // when the loop fell back
    storage::LocalStorage local(*cache);
    auto setup = storage::tier_setup(config);
    auto tiers = setup ? storage::open_tiers(*setup, &local, /*offline=*/false, {})
                       : Expected<std::unique_ptr<storage::TieredStorage>, Failure>(unexpected(setup.error()));
    if (!tiers) {
      KG_LOG_ERROR(tiers.error().message);
      return kExitFailure;
    }
    auto result = emit::emit_kernel(**tiers, generator, req);
    if (!result) {
      KG_LOG_ERROR(file << ": " << result.error().message);
      status = kExitFailure;
      continue;
    }
    auto record = cache->get_record(key);
    if (record && !record->history_digest.empty()) {
      if (auto blob = cache->get_blob(record->history_digest)) {
        if (auto h = loop::parse_history(*blob)) {
          print_summary(spec->name, *h);
        }
      }
    }
    std::fprintf(stderr, "kernelgen: %s: cached as %s (%s), key %s; `kernelgen report %s` shows the loop\n",
                 spec->name.c_str(), result->generator.c_str(), cache::verification_name(result->verification),
                 key.c_str(), key.c_str());
  }
  return status;
}

}  // namespace kg::cli

// kernelgen cache verify [KEY...] [--arch A] [--force]: verifies on this machine's GPU the kernels
// that were cached where no GPU was (Verification::Unverified), so that a record verified once
// stays verified wherever it travels (docs/sharing.md, "Verifying records made without a GPU").
//
//   select   the named records (keys or unique prefixes), else every unverified one (--arch: of
//            that target only); a verified record is verified again only when named with --force
//   check    per record, no GPU needed: every blob against its digest, the spec rebuilt from its
//            canonical text, the key recomputed from it (verify/stored_kernel.h)
//   GPU      the runner's probe, as the generation path does; none: one message naming the
//            waiting records, exit 77
//   verify   the verifier of the generation path (static checks, nvcc, the sandboxed runner)
//   pass     the record rewritten as verified with its report, in one put through the tiers (a
//            writable remote receives it, as any generated kernel)
//   reject   findings printed; the record is removed from the local cache: a kernel a GPU
//            rejected is never kept (design §1, cache/verification.h), and the next build
//            generates it again, verified before it is cached where a GPU is
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>

#include "cache/local_cache.h"
#include "commands.h"
#include "config/config.h"
#include "lock/mode.h"
#include "record_lookup.h"
#include "spec/key.h"
#include "storage/local_storage.h"
#include "storage/tiers.h"
#include "util/log.h"
#include "util/text.h"
#include "verify/compiler.h"
#include "verify/runner.h"
#include "verify/stored_kernel.h"
#include "verify/verify.h"

namespace kg::cli {

namespace {

struct Tally {
  int verified = 0;
  int failed = 0;
  int skipped = 0;
  size_t waiting = 0;  // checked, but no GPU to verify them on
};

// The last line: "N verified, M failed, K skipped[, W waiting for a GPU]".
void print_tally(const Tally& t) {
  std::cout << t.verified << " verified, " << t.failed << " failed, " << t.skipped << " skipped";
  if (t.waiting > 0) {
    std::cout << ", " << t.waiting << " waiting for a GPU";
  }
  std::cout << "\n";
}

std::string label(const cache::AcRecord& r) {
  return printable(r.name, 80) + " (key " + r.key + ", " + printable(r.arch, 40) + ")";
}

// The records to verify, from the read-only cache. Named keys that do not resolve are errors
// (counted in `tally.failed`); skipped ones are counted and said.
std::vector<cache::AcRecord> select_records(cache::LocalCache& cache, const CacheOptions& opts,
                                            const std::string& arch, Tally& tally, int& verified_already) {
  std::vector<cache::AcRecord> out;
  std::set<std::string> seen;
  const auto wanted_arch = [&](const cache::AcRecord& r) { return arch.empty() || r.arch == arch; };
  if (!opts.keys.empty()) {
    for (const std::string& k : opts.keys) {
      auto r = find_record(cache, k);
      if (!r) {
        KG_LOG_ERROR(r.error().message);
        ++tally.failed;
        continue;
      }
      if (!seen.insert(r->key).second) {
        continue;
      }
      if (!wanted_arch(*r)) {
        std::fprintf(stderr, "kernelgen: skipping %s: not for --arch %s\n", label(*r).c_str(), arch.c_str());
        ++tally.skipped;
      } else if (r->verification == cache::Verification::Verified && !opts.force) {
        std::fprintf(stderr, "kernelgen: skipping %s: verified already (--force verifies it again)\n",
                     label(*r).c_str());
        ++tally.skipped;
      } else {
        out.push_back(std::move(*r));
      }
    }
    return out;
  }
  auto all = cache.list_records();
  if (!all) {
    KG_LOG_ERROR("cannot list the cache: " << all.error().message);
    ++tally.failed;
    return out;
  }
  for (cache::AcRecord& r : *all) {
    if (r.verification == cache::Verification::Verified) {
      ++verified_already;
    } else if (wanted_arch(r)) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

// The message for a machine without a usable GPU: what is needed and which records wait for it.
void print_waiting(const std::string& why, const std::vector<verify::StoredKernel>& ready) {
  std::string list;
  for (const verify::StoredKernel& k : ready) {
    list += "  " + k.record.key + "  " + printable(k.record.name, 80) + "  " + printable(k.record.arch, 40) + "\n";
  }
  KG_LOG_ERROR("cache verify needs a CUDA GPU: " << why << ". " << ready.size()
                                                 << (ready.size() == 1 ? " kernel is" : " kernels are")
                                                 << " waiting to be verified:\n"
                                                 << list
                                                 << "Run `kernelgen cache verify` where a GPU is: on this cache, or "
                                                    "after `kernelgen cache export` / `import`, or through a "
                                                    "shared remote (docs/sharing.md)");
}

}  // namespace

int run_cache_verify(const GlobalOptions& global, const CacheOptions& opts) {
  std::string arch;
  if (!opts.arch.empty()) {
    auto a = spec::resolve_arch(opts.arch);
    if (!a) {
      KG_LOG_ERROR("--arch: " << a.error().message);
      return kExitUsage;
    }
    arch = *a;
  }
  if (opts.force && opts.keys.empty()) {
    KG_LOG_ERROR("--force verifies verified kernels again: name them (kernelgen cache verify --force KEY...)");
    return kExitUsage;
  }
  if (global.mode == lock::Mode::ReadOnly) {
    KG_LOG_ERROR("cache verify writes what it verified into the cache, which mode read_only never writes "
                 "(the mode setting, from "
                 << global.config->value("mode").source << ")");
    return kExitFailure;
  }
  const std::string& dir = global.cache_dir;
  Tally tally;
  int verified_already = 0;
  std::vector<verify::StoredKernel> ready;
  {
    // Selection and the checks that need no GPU, on a read-only open: nothing is written (not even
    // the eviction of a damaged blob) before the GPU is known to be there.
    auto cache = cache::LocalCache::open(dir, /*read_only=*/true);
    if (!cache) {
      if (cache.error().kind == Failure::Kind::NotFound && opts.keys.empty()) {
        std::cout << "nothing to verify: no cache at " << dir << "\n";
        return kExitOk;
      }
      if (cache.error().kind == Failure::Kind::NotFound) {
        KG_LOG_ERROR("no cache entry with key '" << printable(opts.keys.front()) << "': no cache at " << dir);
        return kExitFailure;
      }
      KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
      return kExitFailure;
    }
    std::vector<cache::AcRecord> selected = select_records(*cache, opts, arch, tally, verified_already);
    storage::LocalStorage local(*cache);
    for (const cache::AcRecord& r : selected) {
      auto k = verify::load_stored_kernel(local, r);
      if (!k) {
        KG_LOG_ERROR(k.error().message << "; not verified");
        ++tally.failed;
        continue;
      }
      ready.push_back(std::move(*k));
    }
  }
  if (ready.empty()) {
    if (tally.failed == 0 && tally.skipped == 0) {
      std::cout << "nothing to verify: " << (verified_already ? "every kernel in " + dir + " is verified (" +
                                                                    std::to_string(verified_already) + ")"
                                                              : "no unverified kernel in " + dir +
                                                                    (arch.empty() ? "" : " for " + arch))
                << "\n";
    }
    print_tally(tally);
    return tally.failed ? kExitFailure : kExitOk;
  }

  // The GPU, found as the generation path finds it (verify/emit_gate.cc): the runner's probe.
  const verify::VerifierSetup setup = verify::verifier_setup(*global.config);
  verify::VerifyOptions vo;
  vo.work_dir = setup.work_dir;
  vo.limits.private_network = setup.private_network;
  verify::SandboxRunner runner(setup.runner, vo.work_dir, setup.env);
  auto gpu = runner.probe(vo.limits);
  if (!gpu || !*gpu) {
    tally.waiting = ready.size();
  }
  if (!gpu) {
    print_waiting("the verifier's runner cannot look for one (" + gpu.error().message + ")", ready);
    print_tally(tally);
    return tally.failed ? kExitFailure : kExitVerifierError;
  }
  if (!*gpu) {
    print_waiting("there is no CUDA device here (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides it)", ready);
    print_tally(tally);
    return tally.failed ? kExitFailure : kExitNoGpu;
  }
  verify::NvccCompiler compiler(setup.nvcc, setup.env);
  if (compiler.path().empty()) {
    KG_LOG_ERROR("cache verify compiles each kernel with nvcc, and found none (set KERNELGEN_NVCC or put nvcc "
                 "on PATH); nothing was verified");
    print_tally(tally);
    return tally.failed ? kExitFailure : kExitVerifierError;
  }

  auto cache = cache::LocalCache::open(dir);
  if (!cache) {
    KG_LOG_ERROR("cannot open the kernel cache for writing: " << cache.error().message);
    return kExitFailure;
  }
  storage::LocalStorage local(*cache);
  auto tier_setup = storage::tier_setup(*global.config);
  if (!tier_setup) {
    KG_LOG_ERROR(tier_setup.error().message);
    return kExitFailure;
  }
  auto tiers = storage::open_tiers(*tier_setup, &local, !lock::may_use_network(global.mode), {});
  if (!tiers) {
    KG_LOG_ERROR(tiers.error().message);
    return kExitFailure;
  }

  std::string device_arch;  // learnt from the first report that ran on the device
  for (size_t i = 0; i < ready.size(); ++i) {
    const verify::StoredKernel& k = ready[i];
    const cache::AcRecord& r = k.record;
    if (!verify::device_can_run(device_arch, r.arch)) {
      std::fprintf(stderr, "kernelgen: skipping %s: this GPU (%s) cannot run %s kernels; it stays unverified\n",
                   label(r).c_str(), device_arch.c_str(), r.arch.c_str());
      ++tally.skipped;
      continue;
    }
    std::fprintf(stderr, "kernelgen: verifying %zu of %zu: %s\n", i + 1, ready.size(), label(r).c_str());
    verify::VerifyOptions one = vo;
    one.arch = r.arch;
    one.spec_file = "cache:" + r.key;
    verify::Verifier verifier(compiler, runner, one);
    auto report = verifier.verify(k.spec, k.spec_yaml, k.source);
    if (!report) {
      KG_LOG_ERROR("the verifier could not run for " << label(r) << ": " << report.error().message
                                                     << " (rerun with KERNELGEN_LOG=debug for details)");
      print_tally(tally);
      return kExitVerifierError;
    }
    report->sandbox.runner = runner.path();
    if (!report->device.arch.empty()) {
      device_arch = report->device.arch;
    }
    if (report->verdict == verify::Verdict::Incomplete) {
      std::fprintf(stderr, "kernelgen: %s: not verified (the runner found no CUDA device); it stays unverified\n",
                   label(r).c_str());
      ++tally.skipped;
      continue;
    }
    if (!report->passed() && !verify::device_can_run(device_arch, r.arch)) {
      std::fprintf(stderr, "kernelgen: skipping %s: this GPU (%s) cannot run %s kernels; it stays unverified\n",
                   label(r).c_str(), device_arch.c_str(), r.arch.c_str());
      ++tally.skipped;
      continue;
    }
    // Another writer (kernelgend, kernelgen generate) may have replaced the record meanwhile:
    // only the record that was checked and verified is rewritten.
    auto now = cache->get_record(r.key);
    cache::AcRecord before = r, after = now ? *now : cache::AcRecord{};
    before.last_access_unix = after.last_access_unix = 0;
    if (!now || !(before == after)) {
      std::fprintf(stderr, "kernelgen: skipping %s: its record changed while it was verified; left as it is now\n",
                   label(r).c_str());
      ++tally.skipped;
      continue;
    }
    if (report->passed()) {
      verify::StoredKernel current = k;
      current.record = *now;
      auto stored = verify::store_verified(**tiers, current, verify::report_json_text(*report));
      if (!stored) {
        KG_LOG_ERROR("cannot store " << label(r) << " as verified: " << stored.error().message);
        ++tally.failed;
        continue;
      }
      std::fprintf(stderr, "kernelgen: %s: verified in %.1f s", printable(r.name, 80).c_str(), report->total_seconds);
      if (report->timing.measured) {
        std::fprintf(stderr, " (%.3f ms, %.0f TFLOP/s on %s)", report->timing.median_ms, report->timing.tflops,
                     report->device.name.c_str());
      }
      std::fprintf(stderr, "\n");
      ++tally.verified;
      continue;
    }
    std::cout << verify::report_summary(*report);
    auto removed = cache->remove_record(r.key);
    KG_LOG_ERROR(label(r) << " was rejected by the verifier on this GPU (findings above)"
                          << (removed ? "; its record is removed from the local cache, so the next build generates "
                                        "it again (verified before it is cached where a GPU is)"
                                      : "; its record could not be removed: " + removed.error().message));
    ++tally.failed;
  }
  print_tally(tally);
  return tally.failed ? kExitFailure : kExitOk;
}

}  // namespace kg::cli

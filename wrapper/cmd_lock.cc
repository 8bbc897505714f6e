// kernelgen lock: write the lockfile entries of specs from the local cache (lock/lockfile.h).
#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "lock/lockfile.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/log.h"

namespace kg::cli {

int run_lock(const GlobalOptions& global, const LockOptions& opts) {
  auto arch = spec::resolve_arch(opts.arch);
  if (!arch) {
    KG_LOG_ERROR(arch.error().message);
    return kExitUsage;
  }
  auto existing = lock::read_lockfile(opts.lockfile);
  if (!existing && existing.error().kind != Failure::Kind::NotFound) {
    KG_LOG_ERROR(existing.error().message);
    return kExitFailure;
  }
  lock::Lockfile lock = existing ? std::move(*existing) : lock::Lockfile();

  // Read-only, and never generates: the kernels come from a build (or `kernelgen emit`) before.
  // A missing cache is an empty one: every spec is then reported as not cached.
  auto cache = cache::LocalCache::open(global.cache_dir, /*read_only=*/true);
  if (!cache && cache.error().kind != Failure::Kind::NotFound) {
    KG_LOG_ERROR("cannot open the kernel cache: " << cache.error().message);
    return kExitFailure;
  }

  bool ok = true;
  std::vector<std::string> lines;  // what happened to each spec, printed once the lockfile is written
  for (const std::string& file : opts.spec_files) {
    auto spec = spec::load_spec_file(file);
    if (!spec) {
      for (const spec::Diagnostic& d : spec.error()) {
        std::cerr << d.str() << "\n";
      }
      ok = false;
      continue;
    }
    const std::string key = spec::spec_key(*spec, *arch);
    const std::string build_first = ": build it first (`kernelgen emit --spec " + file +
                                    "`, or the build that uses it), then lock it";
    Expected<cache::AcRecord, Failure> record =
        cache ? cache->get_record(key) : fail("no cache at " + global.cache_dir, Failure::Kind::NotFound);
    if (!record) {
      if (record.error().kind == Failure::Kind::NotFound) {
        KG_LOG_ERROR(file << ": " << spec->name << " (key " << key << ", " << *arch << ") is not in the cache "
                          << global.cache_dir << build_first);
      } else {
        KG_LOG_ERROR(file << ": cannot read " << spec->name << " (key " << key << ") from the cache: "
                          << record.error().message);
      }
      ok = false;
      continue;
    }
    // The kernel itself must be there and intact: a lock on a record whose source is damaged or
    // gone would fail every build.
    if (auto source = cache->get_blob(record->source_digest); !source) {
      KG_LOG_ERROR(file << ": the cache's record for " << spec->name << " (key " << key << ") lacks its kernel ("
                        << source.error().message << ")" << build_first);
      ok = false;
      continue;
    }
    lock::LockEntry entry{lock::lock_spec_path(opts.lockfile, file),
                          spec->name,
                          *arch,
                          key,
                          record->source_digest,
                          record->generator,
                          cache::verification_name(record->verification)};
    const lock::LockEntry* old = lock.find(entry.spec);
    std::string what = "added";
    if (old != nullptr && old->key == entry.key && old->kernel == entry.kernel) {
      what = *old == entry ? "unchanged" : "refreshed (" + old->verification + " -> " + entry.verification + ")";
    } else if (old != nullptr && !opts.update) {
      KG_LOG_ERROR(file << ": " << opts.lockfile << " locks " << old->name << " at key " << old->key << ", kernel "
                        << old->kernel << "; it now resolves to key " << entry.key << ", kernel " << entry.kernel
                        << (old->key != entry.key ? " (the spec or KernelGen changed)"
                                                  : " (the cache holds a different kernel for the same key)")
                        << ": to accept the change, run `"
                        << lock::lock_command(opts.lockfile, file, *arch, /*update=*/true) << "`");
      ok = false;
      continue;
    } else if (old != nullptr) {
      what = old->key != entry.key ? "updated (key " + old->key + " -> " + entry.key + ")"
                                   : "updated (kernel " + old->kernel + " -> " + entry.kernel + ")";
    }
    lines.push_back(entry.spec + ": " + entry.name + " " + entry.arch + " key " + entry.key + ": " + what);
    lock.put(std::move(entry));
  }
  if (!ok) {
    KG_LOG_ERROR(opts.lockfile << " left unchanged");
    return kExitFailure;
  }
  auto wrote = lock::write_lockfile(opts.lockfile, lock);
  if (!wrote) {
    KG_LOG_ERROR(wrote.error().message);
    return kExitFailure;
  }
  for (const std::string& line : lines) {
    std::cout << line << "\n";
  }
  std::cout << opts.lockfile << ": " << lock.entries().size() << (lock.entries().size() == 1 ? " entry" : " entries")
            << (*wrote ? " written" : ", unchanged") << "\n";
  return kExitOk;
}

}  // namespace kg::cli

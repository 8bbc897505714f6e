// kg_remote_bench: the cost of a remote hit over loopback, per kernel, against a real nginx
// (tests/remote/nginx_fixture.h): get_record and the two get_blob calls (a ~60 KB source and its
// header) that serving a kernel takes, in both HTTP layouts, through one Storage object (kept-alive
// connections) and through a new object per hit (a new connection each).
//
//   kg_remote_bench [ROUNDS]      ROUNDS defaults to 200; prints median, p90 and max in ms
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cache/record.h"
#include "nginx_fixture.h"
#include "storage/remote.h"
#include "temp_dir.h"
#include "util/hash.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string text_of(size_t bytes, const std::string& seed) {
  std::string s = "// " + seed + "\n";
  for (int i = 0; s.size() < bytes; ++i) {
    s += "  acc[" + std::to_string(i) + "] = fmaf(q[" + std::to_string(i % 128) + "], k[j], acc[" +
         std::to_string(i) + "]);\n";
  }
  return s;
}

std::unique_ptr<kg::storage::Storage> open(const std::string& setting) {
  auto spec = kg::storage::parse_remote(setting);
  if (!spec) {
    std::fprintf(stderr, "kg_remote_bench: %s\n", spec.error().message.c_str());
    std::exit(1);
  }
  auto storage = kg::storage::make_remote_storage(*spec);
  if (!storage) {
    std::fprintf(stderr, "kg_remote_bench: %s\n", storage.error().message.c_str());
    std::exit(1);
  }
  return std::move(*storage);
}

// One hit: the record and its two blobs. Exits on any failure (the figures would be wrong).
void hit(kg::storage::Storage& s, const kg::cache::AcRecord& r) {
  auto record = s.get_record(r.key);
  auto source = record ? s.get_blob(record->source_digest) : kg::Expected<std::string, kg::Failure>("");
  auto header = record ? s.get_blob(record->header_digest) : kg::Expected<std::string, kg::Failure>("");
  if (!record || !source || !header) {
    const kg::Failure& f = !record ? record.error() : !source ? source.error() : header.error();
    std::fprintf(stderr, "kg_remote_bench: a hit failed: %s\n", f.message.c_str());
    std::exit(1);
  }
}

void report(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  std::printf("%-34s median %.3f ms  p90 %.3f ms  max %.3f ms  (%zu hits)\n", what, at(0.5), at(0.9),
              ms.back(), ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  if (rounds <= 0) {
    std::fprintf(stderr, "usage: kg_remote_bench [ROUNDS]\n");
    return 2;
  }
  kg::testing::TempDir dir("kg-remote-bench");
  kg::testing::NginxServer nginx(dir.path());
  if (!nginx.ok()) {
    std::fprintf(stderr, "kg_remote_bench: %s\n", nginx.error().c_str());
    return 1;
  }
  const std::string source = text_of(60000, "source");
  const std::string header = text_of(1500, "header");
  std::printf("nginx on %s; source %zu bytes, header %zu bytes\n", nginx.url().c_str(), source.size(),
              header.size());
  for (const std::string layout : {"webdav", "bazel"}) {
    const std::string setting = nginx.url("/kg") + "|layout=" + layout;
    auto s = open(setting);
    kg::cache::AcRecord r;
    r.key = kg::xxh3_128_hex("bench key " + layout);
    r.name = "bench";
    r.arch = "sm_90a";
    r.generator = "tmpl-3";
    auto source_digest = s->put_blob(source);
    auto header_digest = s->put_blob(header);
    if (!source_digest || !header_digest) {
      std::fprintf(stderr, "kg_remote_bench: put_blob failed\n");
      return 1;
    }
    r.source_digest = *source_digest;
    r.header_digest = *header_digest;
    if (!s->put_record(r)) {
      std::fprintf(stderr, "kg_remote_bench: put_record failed\n");
      return 1;
    }
    hit(*s, r);  // warm the connection
    std::vector<double> kept, fresh;
    for (int i = 0; i < rounds; ++i) {
      const auto t0 = Clock::now();
      hit(*s, r);
      kept.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    for (int i = 0; i < rounds; ++i) {
      const auto t0 = Clock::now();
      auto one = open(setting);
      hit(*one, r);
      fresh.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    report(("http " + layout + ", kept-alive").c_str(), kept);
    report(("http " + layout + ", new connection").c_str(), fresh);
  }
  return 0;
}

// kernelgen report KEY | --history FILE [--out FILE]: a closed-loop run as one HTML page
// (loop/report_html.h).
#include <iostream>

#include "cache/local_cache.h"
#include "commands.h"
#include "record_lookup.h"
#include "loop/report_html.h"
#include "util/file.h"
#include "util/log.h"
#include "util/text.h"

namespace kg::cli {

namespace {

// `text` reduced to file-name characters ([A-Za-z0-9_-]), at most `limit` of them.
std::string file_name_part(const std::string& text, size_t limit, const std::string& fallback) {
  std::string out;
  for (char c : text) {
    if (out.size() == limit) {
      break;
    }
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (ok) {
      out += c;
    }
  }
  return out.empty() ? fallback : out;
}

// Fills `in` from a cache record and its blobs.
Expected<void, Failure> input_from_cache(const GlobalOptions& global, const std::string& key,
                                         loop::ReportInput& in) {
  auto cache = cache::LocalCache::open(global.cache_dir, /*read_only=*/true);
  if (!cache) {
    if (cache.error().kind == Failure::Kind::NotFound) {
      return fail("no cache entry with key '" + printable(key) + "': there is no cache at " +
                      global.cache_dir + "; `kernelgen cache ls` lists the keys",
                  Failure::Kind::NotFound);
    }
    return fail("cannot open the kernel cache: " + cache.error().message);
  }
  auto record = find_record(*cache, key);
  if (!record) {
    return unexpected(record.error());
  }
  in.name = record->name;
  in.key = record->key;
  in.arch = record->arch;
  in.generator = record->generator;
  in.verification = cache::verification_name(record->verification);
  if (!record->report_digest.empty()) {
    auto report = cache->get_blob(record->report_digest);
    if (!report) {
      return fail("the verifier report of " + record->key + " cannot be read (" + report.error().message +
                  "); the cache entry is damaged");
    }
    in.report_json = std::move(*report);
  }
  if (!record->history_digest.empty()) {
    auto blob = cache->get_blob(record->history_digest);
    if (!blob) {
      return fail("the loop history of " + record->key + " is damaged: " + blob.error().message);
    }
    auto history = loop::parse_history(*blob);
    if (!history) {
      return fail("the loop history of " + record->key + " is damaged: " + history.error().message);
    }
    in.history = std::move(*history);
  }
  return {};
}

// Fills `in` from a history JSON file: the final report is the best candidate's, else the
// template's.
Expected<void, Failure> input_from_file(const std::string& path, loop::ReportInput& in) {
  auto text = read_file(path);
  if (!text) {
    return unexpected(text.error());
  }
  auto history = loop::parse_history(*text);
  if (!history) {
    return fail(path + ": not a loop history: " + history.error().message);
  }
  in.name = history->spec_name;
  in.key = history->key;
  in.arch = history->arch;
  if (history->best >= 0) {
    in.report_json = history->candidates[history->best].report_json;
  } else {
    in.report_json = history->template_report_json;
  }
  in.history = std::move(*history);
  return {};
}

}  // namespace

int run_report(const GlobalOptions& global, const ReportOptions& opts) {
  if (opts.key.empty() == opts.history_file.empty()) {
    KG_LOG_ERROR("report: give either a cache KEY or --history FILE (see kernelgen report --help)");
    return kExitUsage;
  }
  loop::ReportInput in;
  auto loaded =
      opts.key.empty() ? input_from_file(opts.history_file, in) : input_from_cache(global, opts.key, in);
  if (!loaded) {
    KG_LOG_ERROR(loaded.error().message);
    return kExitFailure;
  }
  std::string out = opts.out_file;
  if (out.empty()) {
    out = "kernelgen-report-" + file_name_part(in.name, 64, "kernel") + "-" +
          file_name_part(in.key, 8, "nokey") + ".html";
  }
  const std::string page = loop::render_report_html(in);
  auto written = write_file_atomic(out, page);
  if (!written) {
    KG_LOG_ERROR("cannot write the report page to " << out << ": " << written.error().message);
    return kExitFailure;
  }
  std::cout << out << "\n";
  return kExitOk;
}

}  // namespace kg::cli

// A storage tier in memory for unit tests: records and blobs in maps, failures the test chooses
// (`broken`: reads time out, writes fail), and counters of what was asked of it. Unit tests only
// (tests/CMakeLists.txt puts tests/support on their include path).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "storage/storage.h"
#include "util/hash.h"

namespace kg::testing {

class MemoryStorage final : public storage::Storage {
 public:
  explicit MemoryStorage(std::string name = "memory", bool read_only = false)
      : m_name(std::move(name)), m_read_only(read_only) {}

  std::string describe() const override { return m_name; }
  bool read_only() const override { return m_read_only; }
  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override {
    ++gets;
    if (broken) {
      return fail(m_name + " timed out", Failure::Kind::Timeout);
    }
    auto it = records.find(key);
    if (it == records.end()) {
      return fail("no record", Failure::Kind::NotFound);
    }
    return it->second;
  }
  Expected<void, Failure> put_record(const cache::AcRecord& record) override {
    if (broken || m_read_only) {
      return fail(m_name + " refuses writes");
    }
    records[record.key] = record;
    return {};
  }
  Expected<std::string, Failure> get_blob(const std::string& digest) override {
    ++gets;
    if (broken) {
      return fail(m_name + " timed out", Failure::Kind::Timeout);
    }
    auto it = blobs.find(digest);
    if (it == blobs.end()) {
      return fail("no blob", Failure::Kind::NotFound);
    }
    return it->second;
  }
  Expected<std::string, Failure> put_blob(const std::string& content) override {
    if (broken || m_read_only) {
      return fail(m_name + " refuses writes");
    }
    const std::string d = xxh3_128_hex(content);
    blobs[d] = content;
    return d;
  }
  // One batch: all of it or, when broken or read-only, nothing.
  Expected<void, Failure> put_entries(const std::vector<cache::EntryToStore>& entries) override {
    ++batches;
    if (broken || m_read_only) {
      return fail(m_name + " refuses writes");
    }
    for (const cache::EntryToStore& e : entries) {
      for (const cache::BlobToStore& b : e.blobs) {
        blobs[b.digest] = std::string(b.content);
      }
      records[e.record->key] = *e.record;
    }
    return {};
  }
  Expected<bool, Failure> touch(const std::string&) override { return false; }

  std::map<std::string, cache::AcRecord> records;
  std::map<std::string, std::string> blobs;
  bool broken = false;  // reads: Timeout; writes: Error
  int gets = 0;         // get_record and get_blob calls
  int batches = 0;      // put_entries calls

 private:
  std::string m_name;
  bool m_read_only;
};

}  // namespace kg::testing

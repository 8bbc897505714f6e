// Prebuilt bundles (storage/bundle.h). The file format, version 1 (stable: a change of any of
// this is a new version number in the magic line):
//
//   kernelgen-bundle 1\n                                  magic line
//   cas <digest> <length>\n<length bytes>\n               one per blob
//   ac <key> <length> <checksum>\n<length bytes>\n        one per record
//   end <entries> <checksum>\n                            trailer; nothing follows it
//
//   <digest>, <key>  32 lowercase hex digits; a cas entry's digest is xxh3_128_hex of its bytes
//   <length>         decimal, no leading zeros; at most 64 MiB for a blob, 1 MiB for a record
//   ac bytes         the record in its stored JSON form (cache::record_json plus "format",
//                    nlohmann's compact dump: keys sorted), read with cache::parse_record_json;
//                    it names its key, and every digest it names is a cas entry of the bundle
//   ac <checksum>    xxh3_128_hex of the record's bytes (so that damage names the record)
//   <entries>        the number of cas and ac entries
//   end <checksum>   xxh3_128_hex of every byte of the file before "end"
//
// Order: all cas entries by increasing digest, then all ac entries by increasing key, no name
// twice; so the same records and blobs always give the same bytes, whatever order they were asked
// for in. A bundle is written whole to a temporary file, synced and renamed into place.
//
// Reading checks everything before anything is served: the magic line, each entry's header and
// bounds, each blob's digest, each record's checksum, parse and key, the order, the blobs each
// record names, the trailer's count and checksum, and that the file ends there. The first problem
// found is the error, naming the file and the entry or the byte where the format broke. A bundle
// is at most 4 GiB and is read into memory once: what was checked is what is served (blobs are
// not hashed again on each read, their bytes being this process's own copy).
#include "storage/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "cache/local_cache.h"
#include "util/file.h"
#include "util/hash.h"
#include "version.h"

namespace kg::storage {
namespace {

constexpr std::string_view k_magic = "kernelgen-bundle 1\n";
constexpr uint64_t k_max_bundle_bytes = uint64_t{4} << 30;
constexpr uint64_t k_max_blob_bytes = uint64_t{64} << 20;
constexpr uint64_t k_max_record_bytes = uint64_t{1} << 20;
// Longest header line: "ac " + 32 + " " + 20 digits + " " + 32 + "\n" is 89 bytes.
constexpr size_t k_max_header_line = 128;

struct BlobEntry {
  std::string digest;
  size_t offset = 0;  // into BundleStorage::m_data
  size_t length = 0;
};

class BundleStorage final : public Storage {
 public:
  BundleStorage(std::string name, std::string data, std::vector<BlobEntry> blobs,
                std::vector<cache::AcRecord> records)
      : m_name(std::move(name)), m_data(std::move(data)), m_blobs(std::move(blobs)),
        m_records(std::move(records)) {}

  std::string describe() const override { return "bundle " + m_name; }
  bool read_only() const override { return true; }

  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override {
    auto it = std::lower_bound(m_records.begin(), m_records.end(), key,
                               [](const cache::AcRecord& r, const std::string& k) { return r.key < k; });
    if (it == m_records.end() || it->key != key) {
      return fail("no record " + key + " in bundle " + m_name, Failure::Kind::NotFound);
    }
    return *it;
  }

  Expected<void, Failure> put_record(const cache::AcRecord& record) override {
    return fail("cannot store record " + record.key + ": bundle " + m_name + " is read-only");
  }

  Expected<std::string, Failure> get_blob(const std::string& digest) override {
    const BlobEntry* e = find_blob(digest);
    if (e == nullptr) {
      return fail("no blob " + digest + " in bundle " + m_name, Failure::Kind::NotFound);
    }
    return m_data.substr(e->offset, e->length);
  }

  Expected<std::string, Failure> put_blob(const std::string& /*content*/) override {
    return fail("cannot store a blob: bundle " + m_name + " is read-only");
  }

  Expected<bool, Failure> touch(const std::string& /*key*/) override { return false; }

  const std::vector<cache::AcRecord>& records() const { return m_records; }
  std::string_view blob_view(const std::string& digest) const {
    const BlobEntry* e = find_blob(digest);
    return e == nullptr ? std::string_view() : std::string_view(m_data).substr(e->offset, e->length);
  }

 private:
  const BlobEntry* find_blob(const std::string& digest) const {
    auto it = std::lower_bound(m_blobs.begin(), m_blobs.end(), digest,
                               [](const BlobEntry& b, const std::string& d) { return b.digest < d; });
    return it == m_blobs.end() || it->digest != digest ? nullptr : &*it;
  }

  std::string m_name;
  std::string m_data;  // the whole file, as checked
  std::vector<BlobEntry> m_blobs;         // by digest
  std::vector<cache::AcRecord> m_records;  // by key
};

// Reads and checks a bundle held in `data`; `name` is the file for messages.
class Reader {
 public:
  Reader(std::string name, std::string data) : m_name(std::move(name)), m_data(std::move(data)) {}

  Expected<std::unique_ptr<BundleStorage>, Failure> read() {
    const std::string_view d(m_data);
    if (d.size() < k_magic.size() || d.substr(0, k_magic.size()) != k_magic) {
      if (k_magic.substr(0, std::min(d.size(), k_magic.size())) == d) {
        return truncated(d.size());
      }
      const size_t line_end = d.find('\n');
      const std::string found(d.substr(0, std::min<size_t>(line_end == std::string_view::npos ? d.size() : line_end, 40)));
      return bad("header: expected \"kernelgen-bundle 1\", found \"" + printable(found) + "\"");
    }
    size_t pos = k_magic.size();
    std::vector<BlobEntry> blobs;
    std::vector<std::pair<cache::AcRecord, size_t>> records;  // with the entry's header offset
    uint64_t entries = 0;
    while (true) {
      const size_t header_at = pos;
      auto line = header_line(pos);
      if (!line) {
        return unexpected(line.error());
      }
      std::vector<std::string_view> f = split(*line);
      if (!f.empty() && f[0] == "end") {
        KG_TRY(check_trailer(f, header_at, pos, entries));
        break;
      }
      const bool is_cas = !f.empty() && f[0] == "cas";
      const bool is_ac = !f.empty() && f[0] == "ac";
      if (!(is_cas && f.size() == 3) && !(is_ac && f.size() == 4)) {
        return bad("byte " + std::to_string(header_at) +
                   ": expected an entry (\"cas <digest> <length>\" or \"ac <key> <length> <checksum>\") "
                   "or the trailer (\"end <entries> <checksum>\"), found \"" + printable(std::string(*line)) + "\"");
      }
      const std::string entry = std::string(f[0]) + "/" + std::string(f[1]);
      if (!is_digest(f[1])) {
        return bad("byte " + std::to_string(header_at) + ": entry name \"" + printable(std::string(f[1])) +
                   "\" is not 32 lowercase hex digits");
      }
      const uint64_t limit = is_cas ? k_max_blob_bytes : k_max_record_bytes;
      auto length = parse_length(f[2]);
      if (!length) {
        return bad("entry " + entry + ": length \"" + printable(std::string(f[2])) + "\" is not a number");
      }
      if (*length > limit) {
        return bad("entry " + entry + ": " + std::to_string(*length) + " bytes, more than the " +
                   (is_cas ? "64 MiB of a blob" : "1 MiB of a record"));
      }
      if (m_data.size() - pos < *length + 1) {
        return truncated(m_data.size());
      }
      const std::string_view bytes = d.substr(pos, *length);
      pos += *length;
      if (d[pos] != '\n') {
        return bad("entry " + entry + ": expected a newline after its " + std::to_string(*length) +
                   " bytes at byte " + std::to_string(pos));
      }
      ++pos;
      ++entries;
      const std::string name(f[1]);
      if (is_cas) {
        if (!records.empty()) {
          return bad("entry " + entry + ": a blob after the records (blobs come first)");
        }
        if (!blobs.empty() && !(blobs.back().digest < name)) {
          return bad("entry " + entry + ": out of order (blobs are sorted by digest, each once)");
        }
        if (xxh3_128_hex(bytes) != name) {
          return bad("entry " + entry + ": content does not match its digest");
        }
        blobs.push_back(BlobEntry{name, static_cast<size_t>(bytes.data() - d.data()), bytes.size()});
      } else {
        if (!records.empty() && !(records.back().first.key < name)) {
          return bad("entry " + entry + ": out of order (records are sorted by key, each once)");
        }
        if (!is_digest(f[3]) || xxh3_128_hex(bytes) != f[3]) {
          return bad("entry " + entry + ": content does not match its checksum");
        }
        auto record = cache::parse_record_json(name, bytes);
        if (!record) {
          return bad("entry " + entry + ": not a valid record (" + record.error().message + ")");
        }
        records.emplace_back(std::move(*record), header_at);
      }
    }
    std::vector<cache::AcRecord> out;
    out.reserve(records.size());
    for (auto& [record, at] : records) {
      for (const std::string* digest : cache::blob_digests(record)) {
        auto it = std::lower_bound(blobs.begin(), blobs.end(), *digest,
                                   [](const BlobEntry& b, const std::string& x) { return b.digest < x; });
        if (it == blobs.end() || it->digest != *digest) {
          return bad("entry ac/" + record.key + ": names blob " + printable(*digest) + " which the bundle lacks");
        }
      }
      out.push_back(std::move(record));
    }
    return std::make_unique<BundleStorage>(m_name, std::move(m_data), std::move(blobs), std::move(out));
  }

 private:
  Unexpected<Failure> bad(const std::string& what) const { return fail("bundle " + m_name + ": " + what); }
  Unexpected<Failure> truncated(size_t at) const { return bad("truncated at byte " + std::to_string(at)); }

  static std::string printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 80)) {
      out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return out;
  }

  // The header line at `pos` (without its newline); advances `pos` past it.
  Expected<std::string_view, Failure> header_line(size_t& pos) const {
    const std::string_view d(m_data);
    const size_t window = std::min(d.size() - pos, k_max_header_line);
    const size_t nl = d.substr(pos, window).find('\n');
    if (nl == std::string_view::npos) {
      if (d.size() - pos <= k_max_header_line) {
        return truncated(d.size());
      }
      return bad("byte " + std::to_string(pos) + ": an entry header longer than " +
                 std::to_string(k_max_header_line) + " bytes");
    }
    std::string_view line = d.substr(pos, nl);
    pos += nl + 1;
    return line;
  }

  static std::vector<std::string_view> split(std::string_view line) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= line.size()) {
      const size_t sp = line.find(' ', start);
      const size_t end = sp == std::string_view::npos ? line.size() : sp;
      out.push_back(line.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

  static std::optional<uint64_t> parse_length(std::string_view text) {
    if (text.empty() || text.size() > 19 || (text.size() > 1 && text[0] == '0')) {
      return std::nullopt;
    }
    uint64_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  }

  Expected<void, Failure> check_trailer(const std::vector<std::string_view>& f, size_t at, size_t end,
                                        uint64_t entries) const {
    auto count = f.size() == 3 ? parse_length(f[1]) : std::nullopt;
    if (!count || !is_digest(f[2])) {
      return bad("trailer at byte " + std::to_string(at) + ": expected \"end <entries> <checksum>\"");
    }
    if (*count != entries) {
      return bad("trailer: says " + std::to_string(*count) + " entries, the bundle has " + std::to_string(entries));
    }
    if (xxh3_128_hex(std::string_view(m_data).substr(0, at)) != f[2]) {
      return bad("trailer: checksum does not match the bundle's bytes");
    }
    if (end != m_data.size()) {
      return bad("trailer: " + std::to_string(m_data.size() - end) + " bytes after the trailer at byte " +
                 std::to_string(end));
    }
    return {};
  }

  std::string m_name;
  std::string m_data;
};

Expected<std::string, Failure> read_bounded(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail("bundle " + path + ": " + os_error("cannot open", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string msg = os_error("cannot stat", path);
    ::close(fd);
    return fail("bundle " + path + ": " + msg);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("bundle " + path + ": not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > k_max_bundle_bytes) {
    ::close(fd);
    return fail("bundle " + path + ": " + std::to_string(st.st_size) + " bytes, more than the 4 GiB a bundle may have");
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      std::string msg = os_error("cannot read", path);
      ::close(fd);
      return fail("bundle " + path + ": " + msg);
    }
    if (n == 0) {
      break;  // shrank while being read: the reader reports it truncated
    }
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  ::close(fd);
  return data;
}

Expected<std::unique_ptr<BundleStorage>, Failure> open_checked(const std::string& path) {
  auto data = read_bounded(path);
  if (!data) {
    return unexpected(data.error());
  }
  return Reader(path, std::move(*data)).read();
}

void append_entry_header(std::string& out, std::string_view kind, const std::string& name, size_t length,
                         const std::string* checksum) {
  out += kind;
  out += ' ';
  out += name;
  out += ' ';
  out += std::to_string(length);
  if (checksum != nullptr) {
    out += ' ';
    out += *checksum;
  }
  out += '\n';
}

}  // namespace

Expected<BundleStats, Failure> write_bundle(Storage& from, const std::vector<std::string>& keys,
                                            const std::string& path) {
  const std::set<std::string> unique(keys.begin(), keys.end());
  std::vector<cache::AcRecord> records;
  std::map<std::string, std::string> blobs;  // digest → bytes, sorted
  for (const std::string& key : unique) {
    auto record = from.get_record(key);
    if (!record) {
      return fail("cannot export " + key + " from " + from.describe() + ": " + record.error().message,
                  record.error().kind == Failure::Kind::Timeout ? Failure::Kind::Timeout : Failure::Kind::Error);
    }
    for (const std::string* digest : cache::blob_digests(*record)) {
      if (blobs.count(*digest) != 0) {
        continue;
      }
      auto blob = from.get_blob(*digest);
      if (!blob) {
        return fail("cannot export " + key + " from " + from.describe() + ": its blob " + *digest + ": " +
                        blob.error().message,
                    blob.error().kind == Failure::Kind::Timeout ? Failure::Kind::Timeout : Failure::Kind::Error);
      }
      blobs.emplace(*digest, std::move(*blob));
    }
    records.push_back(std::move(*record));
  }
  // `unique` is sorted, so `records` is sorted by key.
  size_t total = k_magic.size() + 128;
  for (const auto& [digest, bytes] : blobs) {
    total += bytes.size() + 64;
  }
  std::string out;
  out.reserve(total + records.size() * 1024);
  out += k_magic;
  BundleStats stats;
  for (const auto& [digest, bytes] : blobs) {
    append_entry_header(out, "cas", digest, bytes.size(), nullptr);
    out += bytes;
    out += '\n';
    ++stats.blobs;
  }
  for (const auto& record : records) {
    const std::string text = cache::stored_record_text(record);
    const std::string checksum = xxh3_128_hex(text);
    append_entry_header(out, "ac", record.key, text.size(), &checksum);
    out += text;
    out += '\n';
    ++stats.records;
  }
  const std::string checksum = xxh3_128_hex(out);
  out += "end " + std::to_string(stats.blobs + stats.records) + " " + checksum + "\n";
  stats.bytes = out.size();
  auto written = write_file_atomic(path, out);
  if (!written) {
    return fail("cannot write bundle " + path + ": " + written.error().message);
  }
  return stats;
}

Expected<std::unique_ptr<Storage>, Failure> open_bundle(const std::string& path) {
  auto bundle = open_checked(path);
  if (!bundle) {
    return unexpected(bundle.error());
  }
  return std::unique_ptr<Storage>(std::move(*bundle));
}

Expected<std::unique_ptr<Storage>, Failure> open_bundle_bytes(std::string bytes, const std::string& name) {
  auto bundle = Reader(name, std::move(bytes)).read();
  if (!bundle) {
    return unexpected(bundle.error());
  }
  return std::unique_ptr<Storage>(std::move(*bundle));
}

Expected<BundleStats, Failure> import_bundle(const std::string& path, Storage& to) {
  auto bundle = open_checked(path);
  if (!bundle) {
    return unexpected(bundle.error());
  }
  const BundleStorage& b = **bundle;
  BundleStats stats;
  std::set<std::string> stored;  // blobs put by this import
  // Entries go into `to` in batches: one transaction (one sync) per batch in the local cache,
  // each entry whole or not at all. The blobs are views into the bundle, not copies.
  constexpr size_t k_batch = 256;
  std::vector<cache::EntryToStore> batch;
  BundleStats pending;
  auto flush = [&]() -> Expected<void, Failure> {
    if (batch.empty()) {
      return {};
    }
    if (auto put = to.put_entries(batch); !put) {
      return fail("cannot import bundle " + path + " into " + to.describe() + ": " + put.error().message,
                  put.error().kind);
    }
    stats.records += pending.records;
    stats.blobs += pending.blobs;
    stats.bytes += pending.bytes;
    pending = BundleStats{};
    batch.clear();
    return {};
  };
  for (const cache::AcRecord& record : b.records()) {
    auto have = to.get_record(record.key);
    if (have) {
      continue;
    }
    if (have.error().kind != Failure::Kind::NotFound) {
      return fail("cannot import bundle " + path + " into " + to.describe() + ": " + have.error().message,
                  have.error().kind);
    }
    cache::EntryToStore entry{&record, {}};
    for (const std::string* digest : cache::blob_digests(record)) {
      if (!stored.insert(*digest).second) {
        continue;  // given with an earlier entry (of this batch or one already stored)
      }
      const std::string_view bytes = b.blob_view(*digest);
      entry.blobs.push_back(cache::BlobToStore{*digest, bytes});
      ++pending.blobs;
      pending.bytes += bytes.size();
    }
    batch.push_back(std::move(entry));
    ++pending.records;
    if (batch.size() == k_batch) {
      KG_TRY(flush());
    }
  }
  KG_TRY(flush());
  return stats;
}

}  // namespace kg::storage

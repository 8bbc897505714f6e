// The HTTP remote against a real nginx (tests/remote/nginx_fixture.h) in both layouts.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "cache/local_cache.h"
#include "nginx_fixture.h"
#include "storage/http_layout.h"
#include "storage/remote.h"
#include "temp_dir.h"
#include "util/hash.h"

namespace kg::storage {
namespace {

using Kind = Failure::Kind;

void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Text of about `bytes` bytes that differs by `seed`.
std::string source_text(const std::string& seed, size_t bytes) {
  std::string s = "// " + seed + "\n";
  for (int line = 0; s.size() < bytes; ++line) {
    s += "  acc[" + std::to_string(line) + "] = fmaf(q[" + std::to_string(line % 128) + "], k, acc);\n";
  }
  return s;
}

// Stores the blobs of a record for `seed` in `s` and returns the record (not stored).
cache::AcRecord stored_blobs_record(Storage& s, const std::string& seed) {
  cache::AcRecord r;
  r.key = xxh3_128_hex("key:" + seed);
  r.name = "relpos_" + seed;
  r.arch = "sm_90a";
  r.generator = "tmpl-3";
  auto source = s.put_blob(source_text(seed, 60000));
  auto header = s.put_blob("#pragma once // " + seed + "\n");
  auto canonical = s.put_blob("name: relpos_" + seed + "\n");
  EXPECT_TRUE(source && header && canonical);
  r.source_digest = source ? *source : "";
  r.header_digest = header ? *header : "";
  r.canonical_digest = canonical ? *canonical : "";
  r.verification = cache::Verification::Unverified;
  r.created_unix = 1700000000;
  r.last_access_unix = 1700000000;
  return r;
}

std::unique_ptr<Storage> open_remote(const std::string& setting) {
  auto spec = parse_remote(setting);
  EXPECT_TRUE(spec) << (spec ? "" : spec.error().message);
  if (!spec) {
    return nullptr;
  }
  auto storage = make_http_storage(*spec);
  EXPECT_TRUE(storage) << (storage ? "" : storage.error().message);
  return storage ? std::move(*storage) : nullptr;
}

// An nginx in a private directory, and the base path /kg on it.
class HttpStorageNginx : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(m_nginx.ok()) << m_nginx.error(); }
  std::string base() const { return m_nginx.url("/kg"); }
  // Where nginx keeps `path` (relative to the base).
  std::string file_of(const std::string& path) const { return m_nginx.data_dir() + "/kg/" + path; }

  testing::TempDir m_dir{"kg-http"};
  testing::NginxServer m_nginx{m_dir.path()};
};

// Every test of this suite runs in both layouts.
class HttpStorageLayout : public HttpStorageNginx, public ::testing::WithParamInterface<std::string> {
 protected:
  bool bazel() const { return GetParam() == "bazel"; }
  std::unique_ptr<Storage> open(const std::string& extra = "") {
    return open_remote(base() + "|layout=" + GetParam() + "|timeout=10" + extra);
  }
  // Where nginx keeps the blob `content`.
  std::string blob_file(const std::string& content) const {
    return bazel() ? file_of(http::bazel_cas_path(http::sha256_hex(content)))
                   : file_of(http::blob_lookup_path(false, xxh3_128_hex(content)));
  }
};

INSTANTIATE_TEST_SUITE_P(HttpStorage, HttpStorageLayout, ::testing::Values("webdav", "bazel"),
                         [](const auto& info) { return info.param; });

TEST_P(HttpStorageLayout, RecordAndBlobsRoundTrip) {
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->describe(), "remote " + base() + " (" + GetParam() + ")");
  EXPECT_FALSE(s->read_only());
  const cache::AcRecord r = stored_blobs_record(*s, "a");
  ASSERT_TRUE(s->put_record(r));
  auto got = s->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  auto source = s->get_blob(r.source_digest);
  ASSERT_TRUE(source) << source.error().message;
  EXPECT_EQ(*source, source_text("a", 60000));
  EXPECT_EQ(xxh3_128_hex(*source), r.source_digest);
  // Where it landed: bazel-remote accepts a CAS entry only under the SHA-256 of its body.
  EXPECT_EQ(read_file(blob_file(*source)), *source);
  // Storing again is idempotent; the record can be replaced.
  auto again = s->put_blob(*source);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, r.source_digest);
  cache::AcRecord r2 = r;
  r2.verification = cache::Verification::Verified;
  ASSERT_TRUE(s->put_record(r2));
  EXPECT_EQ(*s->get_record(r.key), r2);
  auto touched = s->touch(r.key);
  ASSERT_TRUE(touched);
  EXPECT_FALSE(*touched);
}

TEST_P(HttpStorageLayout, EmptyBlobRoundTrips) {
  auto s = open();
  ASSERT_TRUE(s);
  auto digest = s->put_blob("");
  ASSERT_TRUE(digest) << digest.error().message;
  auto got = s->get_blob(*digest);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "");
}

TEST_P(HttpStorageLayout, MissIsNotFound) {
  auto s = open();
  ASSERT_TRUE(s);
  auto record = s->get_record(xxh3_128_hex("nothing"));
  ASSERT_FALSE(record);
  EXPECT_EQ(record.error().kind, Kind::NotFound);
  auto blob = s->get_blob(xxh3_128_hex("nothing"));
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().kind, Kind::NotFound);
  // Names that are not digests never reach the server as paths.
  for (const std::string& bad : std::vector<std::string>{"../../etc/passwd", "", std::string(32, 'G'),
                                                         "0123456789abcdef0123456789ABCDEF"}) {
    auto b = s->get_blob(bad);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().kind, Kind::NotFound) << bad;
    auto r = s->get_record(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::NotFound) << bad;
  }
}

TEST_P(HttpStorageLayout, TamperedBlobIsAMissAndAWarning) {
  auto s = open();
  ASSERT_TRUE(s);
  const std::string content = source_text("tamper", 60000);
  auto digest = s->put_blob(content);
  ASSERT_TRUE(digest);
  std::string bad = content;
  bad[100] ^= 1;
  write_file(blob_file(content), bad);
  ::testing::internal::CaptureStderr();
  auto got = s->get_blob(*digest);
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(got) << "bad bytes handed on";
  EXPECT_EQ(got.error().kind, Kind::NotFound);
  EXPECT_NE(warnings.find("failed its digest check"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find(*digest), std::string::npos) << warnings;
  // The next writer of the same content repairs the server's copy.
  ASSERT_TRUE(s->put_blob(content));
  auto repaired = s->get_blob(*digest);
  ASSERT_TRUE(repaired) << repaired.error().message;
  EXPECT_EQ(*repaired, content);
}

TEST_P(HttpStorageLayout, RecordNamingAnotherKeyIsAMiss) {
  auto s = open();
  ASSERT_TRUE(s);
  const cache::AcRecord r = stored_blobs_record(*s, "moved");
  ASSERT_TRUE(s->put_record(r));
  const std::string other = xxh3_128_hex("other key");
  write_file(file_of(http::record_path(bazel(), other)),
             read_file(file_of(http::record_path(bazel(), r.key))));
  ::testing::internal::CaptureStderr();
  auto got = s->get_record(other);
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::NotFound);
  EXPECT_NE(warnings.find("names " + r.key), std::string::npos) << warnings;
}

TEST_P(HttpStorageLayout, ForgedRecordIsAMiss) {
  auto s = open();
  ASSERT_TRUE(s);
  const std::string key = xxh3_128_hex("forged");
  cache::AcRecord r;
  r.key = key;
  r.source_digest = "../../../etc/passwd";
  const std::string bad_digest = cache::stored_record_text(r);
  for (const std::string& body :
       {std::string("{not json"), std::string("[1,2]"), std::string("{\"key\":\"" + key + "\"}"), bad_digest,
        std::string("\0\xff\x01", 3)}) {
    write_file(file_of(http::record_path(bazel(), key)), body);
    ::testing::internal::CaptureStderr();
    auto got = s->get_record(key);
    const std::string warnings = ::testing::internal::GetCapturedStderr();
    ASSERT_FALSE(got) << body;
    EXPECT_EQ(got.error().kind, Kind::NotFound) << body;
    EXPECT_NE(warnings.find("is damaged"), std::string::npos) << warnings;
  }
}

TEST_P(HttpStorageLayout, OversizedRecordIsAMiss) {
  auto s = open();
  ASSERT_TRUE(s);
  const std::string key = xxh3_128_hex("huge");
  write_file(file_of(http::record_path(bazel(), key)), std::string((size_t{1} << 20) + 1, ' '));
  ::testing::internal::CaptureStderr();
  auto got = s->get_record(key);
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::NotFound);
  EXPECT_NE(warnings.find("larger than 1048576 bytes"), std::string::npos) << warnings;
}

// Without a Content-Length the bound is the write callback's.
TEST_F(HttpStorageNginx, OversizedChunkedAnswersAreAMiss) {
  auto s = open_remote(m_nginx.url("/chunked") + "|timeout=10");
  ASSERT_TRUE(s);
  const std::string key = xxh3_128_hex("chunked");
  const std::string record_file = m_nginx.data_dir() + "/chunked/" + http::record_path(false, key);
  // Under the bound, a chunked answer is read whole.
  const cache::AcRecord r = stored_blobs_record(*s, "chunked");
  ASSERT_TRUE(s->put_record(r));
  auto got = s->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  write_file(record_file, std::string((size_t{1} << 20) + 4096, ' '));
  ::testing::internal::CaptureStderr();
  auto big = s->get_record(key);
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, Kind::NotFound) << big.error().message;
  EXPECT_NE(warnings.find("larger than 1048576 bytes"), std::string::npos) << warnings;
}

TEST_P(HttpStorageLayout, RecordNeedsItsBlobs) {
  auto s = open();
  ASSERT_TRUE(s);
  cache::AcRecord r = stored_blobs_record(*s, "orphan");
  r.report_digest = xxh3_128_hex("a report never stored");
  auto put = s->put_record(r);
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Kind::Error);
  EXPECT_NE(put.error().message.find("which the remote does not hold"), std::string::npos)
      << put.error().message;
  r.report_digest = "not a digest";
  EXPECT_FALSE(s->put_record(r));
  r.report_digest = "";
  r.key = "short";
  EXPECT_FALSE(s->put_record(r));
}

TEST_P(HttpStorageLayout, OtherStatusIsAnErrorNamingUrlAndStatus) {
  auto s = open();
  ASSERT_TRUE(s);
  // A directory where a record should be: nginx answers 301 (add a slash).
  const std::string key = xxh3_128_hex("directory");
  const std::string path = http::record_path(bazel(), key);
  std::filesystem::create_directories(file_of(path));
  auto got = s->get_record(key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::Error);
  EXPECT_NE(got.error().message.find("GET " + base() + "/" + path + ": HTTP 301"), std::string::npos)
      << got.error().message;
}

TEST_P(HttpStorageLayout, ReadOnlyRefusesPuts) {
  auto writer = open();
  ASSERT_TRUE(writer);
  const cache::AcRecord r = stored_blobs_record(*writer, "ro");
  ASSERT_TRUE(writer->put_record(r));
  auto reader = open("|read-only");
  ASSERT_TRUE(reader);
  EXPECT_TRUE(reader->read_only());
  auto got = reader->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  auto blob = reader->put_blob("new content");
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().kind, Kind::Error);
  EXPECT_NE(blob.error().message.find("read-only"), std::string::npos) << blob.error().message;
  auto record = reader->put_record(r);
  ASSERT_FALSE(record);
  EXPECT_NE(record.error().message.find("read-only"), std::string::npos) << record.error().message;
  EXPECT_FALSE(std::filesystem::exists(blob_file("new content")));
}

TEST_P(HttpStorageLayout, ConcurrentGetsAndPuts) {
  auto s = open();
  ASSERT_TRUE(s);
  const cache::AcRecord shared = stored_blobs_record(*s, "shared");
  ASSERT_TRUE(s->put_record(shared));
  constexpr int k_threads = 8;
  constexpr int k_rounds = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < k_rounds; ++i) {
        const std::string seed = std::to_string(t) + "-" + std::to_string(i);
        const std::string content = source_text(seed, 2000 + 97 * i);
        auto digest = s->put_blob(content);
        auto same = s->put_blob(source_text("everyone", 3000));  // all threads, one blob
        if (!digest) {
          ++failures;
          continue;
        }
        auto got = s->get_blob(*digest);
        auto record = s->get_record(shared.key);
        auto source = s->get_blob(shared.source_digest);
        if (!digest || !same || !got || *got != content || !record || *record != shared || !source) {
          ++failures;
        }
        cache::AcRecord mine = shared;
        mine.key = xxh3_128_hex("thread record " + seed);
        if (!s->put_record(mine) || !s->get_record(mine.key)) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(HttpStorageNginx, BazelForgedIndexIsAMiss) {
  auto s = open_remote(base() + "|layout=bazel");
  ASSERT_TRUE(s);
  auto a = s->put_blob("blob a");
  auto b = s->put_blob("blob b");
  ASSERT_TRUE(a && b);
  // a's index now leads to b's content: the XXH3 check catches it.
  write_file(file_of(http::blob_lookup_path(true, *a)), http::sha256_hex("blob b"));
  ::testing::internal::CaptureStderr();
  auto got = s->get_blob(*a);
  std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::NotFound);
  EXPECT_NE(warnings.find("failed its digest check"), std::string::npos) << warnings;
  // An index that is not a SHA-256.
  write_file(file_of(http::blob_lookup_path(true, *a)), "../../../../etc/passwd");
  ::testing::internal::CaptureStderr();
  got = s->get_blob(*a);
  warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::NotFound);
  EXPECT_NE(warnings.find("not a SHA-256 digest"), std::string::npos) << warnings;
  // An index whose content is gone.
  std::filesystem::remove(file_of(http::bazel_cas_path(http::sha256_hex("blob b"))));
  auto gone = s->get_blob(*b);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, Kind::NotFound);
}

TEST(HttpStorageLayoutPaths, Sha256AndNames) {
  EXPECT_EQ(http::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(http::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string key = xxh3_128_hex("k");
  EXPECT_EQ(http::record_path(false, key), "ac/" + key);
  EXPECT_EQ(http::record_path(true, key), "ac/" + http::sha256_hex("kernelgen-ac:" + key));
  EXPECT_EQ(http::blob_lookup_path(false, key), "cas/" + key);
  EXPECT_EQ(http::blob_lookup_path(true, key), "ac/" + http::sha256_hex("kernelgen-cas:" + key));
  EXPECT_TRUE(http::is_sha256_hex(http::sha256_hex("x")));
  EXPECT_FALSE(http::is_sha256_hex(std::string(64, 'A')));
  EXPECT_FALSE(http::is_sha256_hex(std::string(63, 'a')));
}

TEST_F(HttpStorageNginx, BearerTokenIsSentAndRequired) {
  const std::string token_file = m_dir.sub("token");
  write_file(token_file, "kg-test-token\nsecond line ignored\n");
  auto s = open_remote(m_nginx.url("/auth") + "|bearer-token-file=" + token_file);
  ASSERT_TRUE(s);
  const cache::AcRecord r = stored_blobs_record(*s, "auth");
  ASSERT_TRUE(s->put_record(r));
  auto got = s->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);

  // No token: the server's 401 is an error (not a miss) that says how to give one.
  auto none = open_remote(m_nginx.url("/auth"));
  ASSERT_TRUE(none);
  auto miss = none->get_record(r.key);
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().kind, Kind::Error);
  EXPECT_NE(miss.error().message.find("HTTP 401"), std::string::npos) << miss.error().message;
  EXPECT_NE(miss.error().message.find("bearer-token-file"), std::string::npos) << miss.error().message;

  // A wrong token: the error names the file, never the token.
  const std::string wrong_file = m_dir.sub("wrong");
  write_file(wrong_file, "  wrong-secret-value-1234 \r\n");
  auto wrong = open_remote(m_nginx.url("/auth") + "|bearer-token-file=" + wrong_file);
  ASSERT_TRUE(wrong);
  auto put = wrong->put_blob("x");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Kind::Error);
  EXPECT_NE(put.error().message.find("HTTP 401"), std::string::npos) << put.error().message;
  EXPECT_NE(put.error().message.find(wrong_file), std::string::npos) << put.error().message;
  EXPECT_EQ(put.error().message.find("wrong-secret"), std::string::npos) << put.error().message;
  EXPECT_EQ(wrong->describe().find("wrong-secret"), std::string::npos);
}

TEST_F(HttpStorageNginx, TokenFileProblems) {
  auto spec = parse_remote(base() + "|bearer-token-file=" + m_dir.sub("absent"));
  ASSERT_TRUE(spec);
  auto missing = make_http_storage(*spec);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(m_dir.sub("absent") + ": cannot read it"), std::string::npos)
      << missing.error().message;
  write_file(m_dir.sub("empty"), "\nsecret on the second line\n");
  spec->bearer_token_file = m_dir.sub("empty");
  auto empty = make_http_storage(*spec);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("expected a token on its first line"), std::string::npos);
  EXPECT_EQ(empty.error().message.find("secret"), std::string::npos);
  write_file(m_dir.sub("control"), std::string("abc\x01secret\n"));
  spec->bearer_token_file = m_dir.sub("control");
  auto control = make_http_storage(*spec);
  ASSERT_FALSE(control);
  EXPECT_NE(control.error().message.find("control character"), std::string::npos);
  EXPECT_EQ(control.error().message.find("secret"), std::string::npos);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_F(HttpStorageNginx, StalledServerTimesOut) {
  auto s = open_remote(base() + "|timeout=0.3|connect-timeout=0.3");
  ASSERT_TRUE(s);
  const cache::AcRecord r = stored_blobs_record(*s, "stall");  // a kept-alive connection
  m_nginx.pause();
  const auto start = std::chrono::steady_clock::now();
  auto got = s->get_record(r.key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::Timeout) << got.error().message;
  auto blob = s->get_blob(r.source_digest);
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().kind, Kind::Timeout) << blob.error().message;
  auto put = s->put_blob("while stalled");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Kind::Timeout) << put.error().message;
  EXPECT_LT(seconds_since(start), 15.0);
  // A fresh object (a new connection, accepted by the kernel, never answered) too.
  auto fresh = open_remote(base() + "|timeout=0.3|connect-timeout=0.3");
  ASSERT_TRUE(fresh);
  auto fresh_got = fresh->get_record(r.key);
  ASSERT_FALSE(fresh_got);
  EXPECT_EQ(fresh_got.error().kind, Kind::Timeout) << fresh_got.error().message;
  m_nginx.resume();
  auto after = s->get_record(xxh3_128_hex("after"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind, Kind::NotFound) << after.error().message;
}

TEST_F(HttpStorageNginx, KilledServerFailsQuickly) {
  auto s = open_remote(base() + "|timeout=5|connect-timeout=5");
  ASSERT_TRUE(s);
  const cache::AcRecord r = stored_blobs_record(*s, "killed");
  m_nginx.kill();
  const auto start = std::chrono::steady_clock::now();
  auto got = s->get_record(r.key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Kind::Timeout) << got.error().message;
  EXPECT_NE(got.error().message.find(base()), std::string::npos) << got.error().message;
  auto put = s->put_blob("after the end");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Kind::Timeout) << put.error().message;
  // Refused connections answer at once, well before the 5 s timeouts.
  EXPECT_LT(seconds_since(start), 4.0);
}

}  // namespace
}  // namespace kg::storage

// The Redis tier against a real redis-server (tests/remote/redis_fixture.h). A missing
// redis-server fails these tests: it is a test dependency (scripts/install-deps.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../../tests/remote/redis_fixture.h"
#include "cache/local_cache.h"
#include "storage/remote.h"
#include "util/hash.h"

namespace kg::storage {
namespace {

using kg::testing::RedisServer;

std::unique_ptr<RedisServer> start_server(const std::string& password = "") {
  std::string why;
  auto server = RedisServer::start(RedisServer::Options{password}, &why);
  EXPECT_TRUE(server) << why;
  return server;
}

RemoteSpec spec_for(const std::string& url, bool read_only = false) {
  RemoteSpec spec;
  spec.url = url;
  spec.scheme = "redis";
  spec.read_only = read_only;
  spec.timeout_s = 2;
  spec.connect_timeout_s = 1;
  return spec;
}

std::unique_ptr<Storage> open(const RemoteSpec& spec) {
  auto s = make_redis_storage(spec);
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

cache::AcRecord record_for(const std::string& name, const std::string& source_digest,
                           const std::string& header_digest) {
  cache::AcRecord r;
  r.key = xxh3_128_hex("key:" + name);
  r.name = name;
  r.arch = "sm_90a";
  r.generator = "tmpl-3";
  r.source_digest = source_digest;
  r.header_digest = header_digest;
  r.verification = cache::Verification::Verified;
  r.created_unix = 1700000000;
  r.last_access_unix = 1700000000;
  return r;
}

// Stores two blobs and a record naming them; returns the record.
cache::AcRecord store_kernel(Storage& s, const std::string& name) {
  auto source = s.put_blob("// source of " + name + "\n");
  auto header = s.put_blob("// header of " + name + "\n");
  EXPECT_TRUE(source && header);
  cache::AcRecord r = record_for(name, source ? *source : "", header ? *header : "");
  auto put = s.put_record(r);
  EXPECT_TRUE(put) << put.error().message;
  return r;
}

TEST(RedisStorage, RoundTrip) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->describe(), "remote redis://127.0.0.1:" + std::to_string(server->port()) + " (db 0)");
  EXPECT_FALSE(s->read_only());
  const cache::AcRecord r = store_kernel(*s, "causal");
  auto got = s->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  auto source = s->get_blob(r.source_digest);
  ASSERT_TRUE(source) << source.error().message;
  EXPECT_EQ(*source, "// source of causal\n");
  // Stored under the documented names.
  EXPECT_EQ(server->command({"GET", "kernelgen:cas:" + r.source_digest}), "// source of causal\n");
  EXPECT_EQ(server->command({"EXISTS", "kernelgen:ac:" + r.key}), "1");
  // put_blob is idempotent; binary content survives.
  const std::string binary("a\0b\r\n\xff", 6);
  auto d1 = s->put_blob(binary);
  auto d2 = s->put_blob(binary);
  ASSERT_TRUE(d1 && d2);
  EXPECT_EQ(*d1, *d2);
  EXPECT_EQ(*d1, xxh3_128_hex(binary));
  EXPECT_EQ(s->get_blob(*d1).value_or(""), binary);
  // An empty blob is a blob.
  auto empty = s->put_blob("");
  ASSERT_TRUE(empty);
  auto got_empty = s->get_blob(*empty);
  ASSERT_TRUE(got_empty) << got_empty.error().message;
  EXPECT_EQ(*got_empty, "");
  // touch is a no-op that succeeds.
  auto touched = s->touch(r.key);
  ASSERT_TRUE(touched);
  EXPECT_FALSE(*touched);
}

TEST(RedisStorage, DatabaseFromTheUrl) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto db3 = open(spec_for(server->url() + "/3"));
  auto db0 = open(spec_for(server->url()));
  ASSERT_TRUE(db3 && db0);
  EXPECT_EQ(db3->describe(), "remote redis://127.0.0.1:" + std::to_string(server->port()) + " (db 3)");
  const cache::AcRecord r = store_kernel(*db3, "in-db-3");
  EXPECT_TRUE(db3->get_record(r.key));
  auto other = db0->get_record(r.key);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().kind, Failure::Kind::NotFound);
}

TEST(RedisStorage, MissIsNotFound) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  auto r = s->get_record(xxh3_128_hex("absent"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Failure::Kind::NotFound);
  auto b = s->get_blob(xxh3_128_hex("absent"));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, Failure::Kind::NotFound);
  // Names that are not digests are never looked up.
  auto weird = s->get_record("*");
  ASSERT_FALSE(weird);
  EXPECT_EQ(weird.error().kind, Failure::Kind::NotFound);
}

TEST(RedisStorage, TamperedBlobIsNotFoundAndReplaced) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  auto digest = s->put_blob("the real content");
  ASSERT_TRUE(digest);
  ASSERT_EQ(server->command({"SET", "kernelgen:cas:" + *digest, "forged content"}), "OK");
  auto got = s->get_blob(*digest);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(got.error().message.find("does not match its digest"), std::string::npos) << got.error().message;
  // The damaged entry was deleted, so SET NX can store the right bytes again.
  EXPECT_EQ(server->command({"EXISTS", "kernelgen:cas:" + *digest}), "0");
  ASSERT_TRUE(s->put_blob("the real content"));
  EXPECT_EQ(s->get_blob(*digest).value_or(""), "the real content");
}

TEST(RedisStorage, TamperedBlobInReadOnlyTierIsLeftAlone) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const std::string digest = xxh3_128_hex("the real content");
  ASSERT_EQ(server->command({"SET", "kernelgen:cas:" + digest, "forged"}), "OK");
  auto s = open(spec_for(server->url(), /*read_only=*/true));
  ASSERT_TRUE(s);
  auto got = s->get_blob(digest);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  EXPECT_EQ(server->command({"GET", "kernelgen:cas:" + digest}), "forged");
}

TEST(RedisStorage, OversizedBlobIsNotFound) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url(), /*read_only=*/true));
  ASSERT_TRUE(s);
  const std::string big((size_t{64} << 20) + 1, 'x');
  const std::string digest = xxh3_128_hex(big);
  ASSERT_EQ(server->command({"SET", "kernelgen:cas:" + digest, big}), "OK");
  auto got = s->get_blob(digest);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(got.error().message.find("larger than 64 MiB"), std::string::npos) << got.error().message;
}

TEST(RedisStorage, RecordNamingAnotherKeyIsNotFound) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  const cache::AcRecord r = store_kernel(*s, "original");
  const std::string text = server->command({"GET", "kernelgen:ac:" + r.key});
  ASSERT_NE(text.find(r.key), std::string::npos) << text;
  const std::string other = xxh3_128_hex("other key");
  ASSERT_EQ(server->command({"SET", "kernelgen:ac:" + other, text}), "OK");
  auto got = s->get_record(other);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(got.error().message.find("names " + r.key), std::string::npos) << got.error().message;
}

TEST(RedisStorage, GarbageRecordIsNotFound) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  const std::string key = xxh3_128_hex("garbage");
  for (const std::string& value : {std::string("{not json"), std::string("[1,2]"), std::string("\"\""),
                                   std::string(), std::string((size_t{1} << 20) + 10, ' ')}) {
    ASSERT_EQ(server->command({"SET", "kernelgen:ac:" + key, value}), "OK");
    auto got = s->get_record(key);
    ASSERT_FALSE(got) << value.substr(0, 20);
    EXPECT_EQ(got.error().kind, Failure::Kind::NotFound) << value.substr(0, 20);
    EXPECT_NE(got.error().message.find("damaged"), std::string::npos) << got.error().message;
  }
  // A record that parses but names a blob by a path, not a digest.
  cache::AcRecord forged = record_for("forged", "../../etc/passwd", "");
  forged.key = key;
  nlohmann::json j = cache::record_json(forged);
  j["format"] = 1;
  ASSERT_EQ(server->command({"SET", "kernelgen:ac:" + key, j.dump()}), "OK");
  auto got_forged = s->get_record(key);
  ASSERT_FALSE(got_forged);
  EXPECT_EQ(got_forged.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(got_forged.error().message.find("not a digest"), std::string::npos) << got_forged.error().message;
  // A value of another Redis type is an error reply, never a crash.
  ASSERT_EQ(server->command({"DEL", "kernelgen:ac:" + key}), "1");
  ASSERT_EQ(server->command({"LPUSH", "kernelgen:ac:" + key, "x"}), "1");
  auto got = s->get_record(key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::Error) << got.error().message;
  EXPECT_NE(got.error().message.find("WRONGTYPE"), std::string::npos) << got.error().message;
  // ... and the storage goes on working.
  const cache::AcRecord r = store_kernel(*s, "after");
  EXPECT_TRUE(s->get_record(r.key));
}

TEST(RedisStorage, ReadOnlyRefusesPuts) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto writer = open(spec_for(server->url()));
  ASSERT_TRUE(writer);
  const cache::AcRecord r = store_kernel(*writer, "shared");
  auto s = open(spec_for(server->url(), /*read_only=*/true));
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->read_only());
  auto blob = s->put_blob("new");
  ASSERT_FALSE(blob);
  EXPECT_EQ(blob.error().kind, Failure::Kind::Error);
  EXPECT_NE(blob.error().message.find("read-only"), std::string::npos);
  auto rec = s->put_record(r);
  ASSERT_FALSE(rec);
  EXPECT_NE(rec.error().message.find("read-only"), std::string::npos);
  EXPECT_EQ(server->command({"EXISTS", "kernelgen:cas:" + xxh3_128_hex("new")}), "0");
  // Reads work.
  EXPECT_EQ(s->get_record(r.key).value_or(cache::AcRecord{}), r);
}

TEST(RedisStorage, RecordNeedsItsBlobs) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  auto source = s->put_blob("source");
  ASSERT_TRUE(source);
  const cache::AcRecord r = record_for("orphan", *source, xxh3_128_hex("never stored"));
  auto put = s->put_record(r);
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, Failure::Kind::Error);
  EXPECT_NE(put.error().message.find("store blobs first"), std::string::npos) << put.error().message;
  EXPECT_EQ(server->command({"EXISTS", "kernelgen:ac:" + r.key}), "0");
  cache::AcRecord not_digest = record_for("bad", *source, "not-a-digest");
  EXPECT_FALSE(s->put_record(not_digest));
}

TEST(RedisStorage, Password) {
  const std::string password = "pw-Secret-7731";
  auto server = start_server(password);
  ASSERT_TRUE(server);
  const std::string host = "127.0.0.1:" + std::to_string(server->port());
  auto s = open(spec_for("redis://:" + password + "@" + host));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->describe().find(password), std::string::npos);
  const cache::AcRecord r = store_kernel(*s, "with-auth");
  EXPECT_EQ(s->get_record(r.key).value_or(cache::AcRecord{}), r);

  const std::string wrong = "wrong-Guess-4410";
  auto bad = open(spec_for("redis://:" + wrong + "@" + host));
  ASSERT_TRUE(bad);
  auto got = bad->get_record(r.key);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::Error) << got.error().message;
  EXPECT_EQ(got.error().message.find(wrong), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("redis://" + host), std::string::npos) << got.error().message;
  EXPECT_FALSE(bad->put_blob("x"));

  auto none = open(spec_for("redis://" + host));
  ASSERT_TRUE(none);
  auto noauth = none->get_record(r.key);
  ASSERT_FALSE(noauth);
  EXPECT_EQ(noauth.error().kind, Failure::Kind::Error);
  EXPECT_NE(noauth.error().message.find("NOAUTH"), std::string::npos) << noauth.error().message;
}

TEST(RedisStorage, BadUrls) {
  for (const std::string url : {"redis://", "redis://:pw-Hidden@", "redis://host:0", "redis://host:65536",
                                "redis://host:x", "redis://host/db", "redis://[::1", "http://host"}) {
    auto s = make_redis_storage(spec_for(url));
    ASSERT_FALSE(s) << url;
    EXPECT_EQ(s.error().kind, Failure::Kind::Error);
    EXPECT_EQ(s.error().message.find("pw-Hidden"), std::string::npos) << s.error().message;
  }
  auto v6 = make_redis_storage(spec_for("redis://[::1]:7000/2"));
  ASSERT_TRUE(v6);
  EXPECT_EQ((*v6)->describe(), "remote redis://[::1]:7000 (db 2)");
}

TEST(RedisStorage, StalledServerTimesOut) {
  auto server = start_server();
  ASSERT_TRUE(server);
  RemoteSpec spec = spec_for(server->url());
  spec.timeout_s = 0.5;
  spec.connect_timeout_s = 0.5;
  auto s = open(spec);
  ASSERT_TRUE(s);
  const cache::AcRecord r = store_kernel(*s, "before-stall");  // leaves a pooled connection
  server->stall();
  const auto start = std::chrono::steady_clock::now();
  auto got = s->get_record(r.key);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::Kind::Timeout) << got.error().message;
  EXPECT_NE(got.error().message.find(server->url()), std::string::npos) << got.error().message;
  EXPECT_LT(seconds, 10.0);  // the timeout is 0.5 s; the bound only catches a hang
  // A new connection to a stalled server times out too.
  auto fresh = open(spec);
  ASSERT_TRUE(fresh);
  auto again = fresh->get_blob(r.source_digest);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, Failure::Kind::Timeout) << again.error().message;
  // Resumed: the broken connection was dropped; the next call reconnects.
  server->resume();
  auto after = s->get_record(r.key);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(*after, r);
}

TEST(RedisStorage, KilledServer) {
  const std::string password = "pw-Killed-0042";
  auto server = start_server(password);
  ASSERT_TRUE(server);
  const std::string url = "redis://:" + password + "@127.0.0.1:" + std::to_string(server->port());
  auto s = open(spec_for(url));
  ASSERT_TRUE(s);
  const cache::AcRecord r = store_kernel(*s, "before-kill");
  server->kill();
  for (int i = 0; i < 2; ++i) {  // the pooled connection, then a refused connect
    auto got = s->get_record(r.key);
    ASSERT_FALSE(got);
    EXPECT_TRUE(got.error().kind == Failure::Kind::Timeout || got.error().kind == Failure::Kind::Error)
        << got.error().message;
    EXPECT_NE(got.error().kind, Failure::Kind::NotFound);
    EXPECT_EQ(got.error().message.find(password), std::string::npos) << got.error().message;
    EXPECT_NE(got.error().message.find("127.0.0.1:" + std::to_string(server->port())), std::string::npos)
        << got.error().message;
  }
  auto refused = s->put_blob("x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, Failure::Kind::Timeout) << refused.error().message;
}

TEST(RedisStorage, PooledConnectionClosedByTheServer) {
  // Redis closes idle clients (its `timeout` setting) and CLIENT KILL does it now: the next call
  // must not fail for a connection that the pool held.
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  const cache::AcRecord r = store_kernel(*s, "pooled");
  ASSERT_NE(server->command({"CLIENT", "KILL", "TYPE", "normal"}), "0");
  auto got = s->get_record(r.key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, r);
  ASSERT_NE(server->command({"CLIENT", "KILL", "TYPE", "normal"}), "0");
  EXPECT_TRUE(s->put_blob("after the kill"));
}

TEST(RedisStorage, EightThreads) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto source = s->put_blob(std::string(1000 + i, static_cast<char>('a' + t)) + name);
        auto shared = s->put_blob("shared by every thread");
        if (!source || !shared) {
          ++failures;
          continue;
        }
        const cache::AcRecord r = record_for(name, *source, *shared);
        if (!s->put_record(r)) {
          ++failures;
          continue;
        }
        auto got = s->get_record(r.key);
        auto blob = s->get_blob(*source);
        if (!got || *got != r || !blob || xxh3_128_hex(*blob) != *source) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server->command({"DBSIZE"}), std::to_string(8 * 40 * 2 + 1));
}

// A figure, not a check: the median time of a hit (a record and two 60 KB blobs) over loopback.
TEST(RedisStorage, HitLatencyFigure) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto s = open(spec_for(server->url()));
  ASSERT_TRUE(s);
  std::string source(60 * 1024, 's');
  std::string header(60 * 1024, 'h');
  for (size_t i = 0; i < source.size(); i += 7) {
    source[i] = static_cast<char>('a' + i % 26);
    header[i] = static_cast<char>('A' + i % 26);
  }
  auto sd = s->put_blob(source);
  auto hd = s->put_blob(header);
  ASSERT_TRUE(sd && hd);
  const cache::AcRecord r = record_for("latency", *sd, *hd);
  ASSERT_TRUE(s->put_record(r));
  std::vector<double> ms;
  for (int i = 0; i < 200; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto rec = s->get_record(r.key);
    auto b1 = s->get_blob(rec->source_digest);
    auto b2 = s->get_blob(rec->header_digest);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    ASSERT_TRUE(rec && b1 && b2);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("redis hit (record + 2 x 60 KB blobs, loopback): median %.3f ms, p90 %.3f ms over 200\n",
              ms[100], ms[180]);
}

}  // namespace
}  // namespace kg::storage

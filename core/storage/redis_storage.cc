// The Redis tier (storage/remote.h): a team's shared cache in a Redis server, over libhiredis
// (loaded on first use: util/hiredis_library.h; without it the tier fails like a server that is down).
//
//   kernelgen:ac:<key>       the record, in its stored JSON form (cache::parse_record_json)
//   kernelgen:cas:<digest>   the blob's bytes, written with SET NX (content-addressed: never replaced)
//
// URL: redis://[[user]:password@]host[:port][/db] (port 6379, database 0 by default; [::1] for an
// IPv6 address). A password is sent with AUTH (AUTH user password with a user: Redis 6 ACLs), a
// database other than 0 selected with SELECT, once per connection; neither the password nor the
// user appear in describe() or in any message.
//
// Connections: a small pool guarded by a mutex, so that calls from several threads run at once,
// each on its own connection. A call takes a connection (or opens one: spec.connect_timeout_s),
// and gives it back when it ended cleanly; a connection that failed in any way (an I/O error, a
// timeout, a reply that was not read) is closed, and the next call opens a new one. A pooled
// connection that the server closed while it was idle (end of file, reset) is replaced at once and
// the command sent again (every command here may be repeated). Each command waits at most
// spec.timeout_s (redisSetTimeout: the socket's send and receive timeouts).
//
// Failure kinds: a server that cannot be reached, refuses the connection, closes it, or does not
// answer in time → Timeout (the remote is not there for now); an error reply (a wrong password,
// WRONGTYPE, out of memory ...) or a malformed reply → Error. Messages name the URL without its
// password.
//
// Reads are bounded: values are read with GETRANGE 0..limit, so that a record over 1 MiB or a
// blob over 64 MiB is never transferred whole; such an entry is damage. Everything read is checked
// (a record must parse and name its key, a blob must hash to its digest); damage is a miss
// (NotFound) and one warning, and a damaged blob is deleted unless the tier is read-only (SET NX
// would otherwise never replace it).
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/local_cache.h"
#include "storage/remote.h"
#include "util/hash.h"
#include "util/hiredis_library.h"
#include "util/log.h"
#include "version.h"

namespace kg::storage {
namespace {

constexpr size_t k_max_record_bytes = size_t{1} << 20;
constexpr size_t k_max_blob_bytes = size_t{64} << 20;
// Idle connections kept for reuse; more may be open at once while many threads call.
constexpr size_t k_max_idle_connections = 8;
constexpr std::string_view k_ac_prefix = "kernelgen:ac:";
constexpr std::string_view k_cas_prefix = "kernelgen:cas:";

struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user;
  std::string password;
  bool has_password = false;
};

// Parses redis://[[user]:password@]host[:port][/db]. Errors never contain the user info.
Expected<RedisAddress, Failure> parse_redis_url(const std::string& url) {
  constexpr std::string_view scheme = "redis://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return fail("not a redis:// URL");
  }
  std::string_view rest = std::string_view(url).substr(scheme.size());
  RedisAddress a;
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = info.find(':');
    if (colon == std::string_view::npos) {
      return fail("redis URL: expected ':password@' before the host (a user alone is not supported)");
    }
    a.user = std::string(info.substr(0, colon));
    a.password = std::string(info.substr(colon + 1));
    a.has_password = true;
  }
  std::string_view hostport = rest;
  std::string_view db_text;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    db_text = rest.substr(slash + 1);
  }
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return fail("redis URL: '[' without ']' in the host");
    }
    a.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail("redis URL: expected ':port' after ']'");
      }
      port_text = after.substr(1);
      if (port_text.empty()) {
        return fail("redis URL: empty port");
      }
    }
  } else if (const size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    a.host = std::string(hostport.substr(0, colon));
    port_text = hostport.substr(colon + 1);
    if (port_text.empty()) {
      return fail("redis URL: empty port");
    }
  } else {
    a.host = std::string(hostport);
  }
  if (a.host.empty()) {
    return fail("redis URL: no host");
  }
  auto number = [](std::string_view text, long max) -> long {
    if (text.empty() || text.size() > 9) {
      return -1;
    }
    long v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') {
        return -1;
      }
      v = v * 10 + (c - '0');
    }
    return v <= max ? v : -1;
  };
  if (!port_text.empty()) {
    const long port = number(port_text, 65535);
    if (port <= 0) {
      return fail("redis URL: port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
    }
    a.port = static_cast<int>(port);
  }
  if (!db_text.empty()) {
    const long db = number(db_text, 1000000);
    if (db < 0) {
      return fail("redis URL: database \"" + std::string(db_text) + "\" is not a number");
    }
    a.db = static_cast<int>(db);
  }
  return a;
}

struct ContextFree {
  void operator()(redisContext* c) const { hiredis::lib().free_context(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const { hiredis::lib().free_reply(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(double seconds) {
  if (!(seconds > 0)) {
    seconds = 0.001;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(std::floor(seconds));
  tv.tv_usec = static_cast<suseconds_t>((seconds - std::floor(seconds)) * 1e6);
  return tv;
}

// A connection and whether it came from the pool (it may have been closed by the server since).
struct Connection {
  Context context;
  bool reused = false;
};

// The bytes of a string reply.
std::string_view reply_bytes(const redisReply& r) { return std::string_view(r.str, r.len); }

class RedisStorage final : public Storage {
 public:
  RedisStorage(RemoteSpec spec, RedisAddress address)
      : m_spec(std::move(spec)), m_address(std::move(address)) {
    const bool v6 = m_address.host.find(':') != std::string::npos;
    m_where = "redis://" + (v6 ? "[" + m_address.host + "]" : m_address.host) + ":" +
              std::to_string(m_address.port);
    m_describe = "remote " + m_where + " (db " + std::to_string(m_address.db) + ")";
  }

  std::string describe() const override { return m_describe; }
  bool read_only() const override { return m_spec.read_only; }

  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override {
    if (!is_digest(key)) {
      return fail("no record for \"" + key + "\": not a key", Failure::Kind::NotFound);
    }
    const std::string name = std::string(k_ac_prefix) + key;
    auto value = get_bounded(name, k_max_record_bytes);
    if (!value) {
      return unexpected(value.error());
    }
    if (!*value) {
      return fail("no record " + key + " in " + m_describe, Failure::Kind::NotFound);
    }
    const std::string& text = **value;
    if (text.size() > k_max_record_bytes) {
      return damaged("record " + key, "larger than 1 MiB");
    }
    auto record = cache::parse_record_json(key, text);
    if (!record) {
      return damaged("record " + key, record.error().message);
    }
    for (const std::string* d : cache::blob_digests(*record)) {
      if (!is_digest(*d)) {
        return damaged("record " + key, "it names a blob by something that is not a digest");
      }
    }
    return std::move(*record);
  }

  Expected<void, Failure> put_record(const cache::AcRecord& record) override {
    KG_TRY(check_writable("store a record"));
    if (!is_digest(record.key)) {
      return fail("cannot store a record under \"" + record.key + "\": not a key");
    }
    std::vector<std::string> args = {"EXISTS"};
    for (const std::string* d : cache::blob_digests(record)) {
      if (!is_digest(*d)) {
        return fail("cannot store record " + record.key + ": \"" + *d + "\" is not a digest");
      }
      args.push_back(std::string(k_cas_prefix) + *d);
    }
    nlohmann::json j = cache::record_json(record);
    j["format"] = kCacheFormatVersion;
    const std::string text = j.dump();
    if (text.size() > k_max_record_bytes) {
      return fail("cannot store record " + record.key + ": larger than 1 MiB");
    }
    auto conn = acquire();
    if (!conn) {
      return unexpected(conn.error());
    }
    if (args.size() > 1) {
      auto exists = command(*conn, args);
      if (!exists) {
        return unexpected(exists.error());
      }
      if ((*exists)->type != REDIS_REPLY_INTEGER) {
        return malformed(std::move(*conn), "EXISTS");
      }
      if ((*exists)->integer != static_cast<long long>(args.size() - 1)) {
        release(std::move(*conn));
        return fail("cannot store record " + record.key + " in " + m_describe +
                    ": a blob it names is not there (store blobs first)");
      }
    }
    auto set = command(*conn, {"SET", std::string(k_ac_prefix) + record.key, text});
    if (!set) {
      return unexpected(set.error());
    }
    if ((*set)->type != REDIS_REPLY_STATUS) {
      return malformed(std::move(*conn), "SET");
    }
    release(std::move(*conn));
    return {};
  }

  Expected<std::string, Failure> get_blob(const std::string& digest) override {
    if (!is_digest(digest)) {
      return fail("no blob \"" + digest + "\": not a digest", Failure::Kind::NotFound);
    }
    const std::string name = std::string(k_cas_prefix) + digest;
    auto value = get_bounded(name, k_max_blob_bytes);
    if (!value) {
      return unexpected(value.error());
    }
    if (!*value) {
      return fail("no blob " + digest + " in " + m_describe, Failure::Kind::NotFound);
    }
    std::string& bytes = **value;
    const char* why = nullptr;
    if (bytes.size() > k_max_blob_bytes) {
      why = "larger than 64 MiB";
    } else if (xxh3_128_hex(bytes) != digest) {
      why = "content does not match its digest";
    }
    if (why != nullptr) {
      if (!m_spec.read_only) {
        // Best effort: the next put_blob can then store the right bytes.
        if (auto conn = acquire()) {
          if (command(*conn, {"DEL", name})) {
            release(std::move(*conn));
          }
        }
      }
      return damaged("blob " + digest, why);
    }
    return std::move(bytes);
  }

  Expected<std::string, Failure> put_blob(const std::string& content) override {
    KG_TRY(check_writable("store a blob"));
    if (content.size() > k_max_blob_bytes) {
      return fail("cannot store a blob of " + std::to_string(content.size()) + " bytes in " + m_describe +
                  ": larger than 64 MiB");
    }
    std::string digest = xxh3_128_hex(content);
    auto conn = acquire();
    if (!conn) {
      return unexpected(conn.error());
    }
    auto set = command(*conn, {"SET", std::string(k_cas_prefix) + digest, content, "NX"});
    if (!set) {
      return unexpected(set.error());
    }
    // OK when stored, nil when the blob was there already.
    if ((*set)->type != REDIS_REPLY_STATUS && (*set)->type != REDIS_REPLY_NIL) {
      return malformed(std::move(*conn), "SET");
    }
    release(std::move(*conn));
    return digest;
  }

  Expected<bool, Failure> touch(const std::string& /*key*/) override {
    // Redis evicts by its own policy (maxmemory-policy); access times are the local tier's.
    return false;
  }

 private:
  Expected<void, Failure> check_writable(const char* what) const {
    if (m_spec.read_only) {
      return fail(std::string("cannot ") + what + ": " + m_describe + " is read-only");
    }
    return {};
  }

  Unexpected<Failure> damaged(const std::string& what, const std::string& why) const {
    KG_LOG_WARN(m_describe << ": " << what << " is damaged (" << why << "); treated as a miss");
    return fail(m_describe + ": " + what + " is damaged (" + why + ")", Failure::Kind::NotFound);
  }

  Unexpected<Failure> malformed(Connection /*closed, not given back*/, const char* what) const {
    return fail(m_where + ": unexpected reply to " + std::string(what));
  }

  // A failure of the connection `c` (it is closed by the caller).
  Failure connection_failure(const redisContext& c, const std::string& doing) const {
    const std::string why = c.errstr[0] != '\0' ? std::string(c.errstr) : "connection failed";
    if (c.err == REDIS_ERR_IO || c.err == REDIS_ERR_EOF) {
      const bool timed_out = why.find("temporarily unavailable") != std::string::npos ||
                             why.find("timed out") != std::string::npos;
      return Failure{Failure::Kind::Timeout, m_where + ": " + doing + ": " +
                                                 (timed_out ? "no answer in time (" + why + ")" : why)};
    }
    return Failure{Failure::Kind::Error, m_where + ": " + doing + ": " + why};
  }

  // Sends one command on `conn` and reads its reply, once: a connection that failed is closed
  // (`*stale` then says whether it failed as one the server had closed: end of file, reset,
  // broken pipe; not a timeout). After an error reply the caller drops the connection (simpler
  // than telling which errors leave it usable).
  Expected<Reply, Failure> command_once(Context& conn, const std::vector<std::string>& args, bool* stale) {
    *stale = false;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply reply(static_cast<redisReply*>(
        hiredis::lib().command_argv(conn.get(), static_cast<int>(args.size()), argv.data(), lens.data())));
    if (!reply) {
      Failure f = connection_failure(*conn, args[0]);
      *stale = conn->err == REDIS_ERR_EOF ||
               (conn->err == REDIS_ERR_IO && (std::strstr(conn->errstr, "reset") != nullptr ||
                                              std::strstr(conn->errstr, "Broken pipe") != nullptr));
      conn.reset();
      return unexpected(std::move(f));
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      std::string why(reply_bytes(*reply).substr(0, 200));
      return fail(m_where + ": " + args[0] + ": " + why);
    }
    return reply;
  }

  // command_once on `conn`; when a connection taken from the pool turns out to have been closed
  // by the server (Redis drops idle clients after its `timeout`), once more on a new one. Every
  // command this tier sends may be repeated (GETRANGE, EXISTS, SET, SET NX, DEL).
  Expected<Reply, Failure> command(Connection& conn, const std::vector<std::string>& args) {
    bool stale = false;
    auto reply = command_once(conn.context, args, &stale);
    if (reply || !stale || !conn.reused) {
      return reply;
    }
    auto fresh = connect();
    if (!fresh) {
      return unexpected(fresh.error());
    }
    conn = Connection{std::move(*fresh), false};
    return command_once(conn.context, args, &stale);
  }

  // The value of `name`, at most limit + 1 bytes of it (more means "too large"); nullopt when
  // there is no such key.
  Expected<std::optional<std::string>, Failure> get_bounded(const std::string& name, size_t limit) {
    auto conn = acquire();
    if (!conn) {
      return unexpected(conn.error());
    }
    auto got = command(*conn, {"GETRANGE", name, "0", std::to_string(limit)});
    if (!got) {
      return unexpected(got.error());
    }
    if ((*got)->type != REDIS_REPLY_STRING) {
      return malformed(std::move(*conn), "GETRANGE");
    }
    std::string value(reply_bytes(**got));
    if (value.empty()) {
      // GETRANGE answers "" for a missing key as for an empty value.
      auto exists = command(*conn, {"EXISTS", name});
      if (!exists) {
        return unexpected(exists.error());
      }
      if ((*exists)->type != REDIS_REPLY_INTEGER) {
        return malformed(std::move(*conn), "EXISTS");
      }
      if ((*exists)->integer == 0) {
        release(std::move(*conn));
        return std::optional<std::string>();
      }
    }
    release(std::move(*conn));
    return std::optional<std::string>(std::move(value));
  }

  // An idle connection, or a new one.
  Expected<Connection, Failure> acquire() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (!m_idle.empty()) {
        Context c = std::move(m_idle.back());
        m_idle.pop_back();
        return Connection{std::move(c), true};
      }
    }
    auto c = connect();
    if (!c) {
      return unexpected(c.error());
    }
    return Connection{std::move(*c), false};
  }

  // A new connection: connected, authenticated, database selected.
  Expected<Context, Failure> connect() {
    if (auto loaded = hiredis::load(); !loaded) {
      // Error, not Timeout: the library will not appear later in this process.
      return fail(m_where + ": " + loaded.error().message);
    }
    bool stale = false;
    Context c(hiredis::lib().connect_with_timeout(m_address.host.c_str(), m_address.port,
                                      to_timeval(m_spec.connect_timeout_s)));
    if (!c) {
      return fail(m_where + ": cannot connect: out of memory");
    }
    if (c->err != 0) {
      return unexpected(connection_failure(*c, "cannot connect"));
    }
    if (hiredis::lib().set_timeout(c.get(), to_timeval(m_spec.timeout_s)) != REDIS_OK) {
      return unexpected(connection_failure(*c, "cannot set the timeout"));
    }
    if (m_address.has_password) {
      std::vector<std::string> auth = {"AUTH"};
      if (!m_address.user.empty()) {
        auth.push_back(m_address.user);
      }
      auth.push_back(m_address.password);
      auto r = command_once(c, auth, &stale);
      if (!r) {
        // The server's words ("WRONGPASS ...", "invalid password") never repeat the password.
        return fail(r.error().message.empty() ? m_where + ": AUTH failed" : r.error().message,
                    r.error().kind);
      }
    }
    if (m_address.db != 0) {
      auto r = command_once(c, {"SELECT", std::to_string(m_address.db)}, &stale);
      if (!r) {
        return unexpected(r.error());
      }
    }
    return c;
  }

  // Gives back a connection that is in step with the server.
  void release(Connection conn) {
    if (!conn.context || conn.context->err != 0) {
      return;
    }
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_idle.size() < k_max_idle_connections) {
      m_idle.push_back(std::move(conn.context));
    }
  }

  RemoteSpec m_spec;
  RedisAddress m_address;
  std::string m_where;     // redis://host:port, for messages
  std::string m_describe;  // remote redis://host:port (db N)
  std::mutex m_mutex;      // guards m_idle
  std::vector<Context> m_idle;
};

}  // namespace

Expected<std::unique_ptr<Storage>, Failure> make_redis_storage(const RemoteSpec& spec) {
  auto address = parse_redis_url(spec.url);
  if (!address) {
    return unexpected(address.error());
  }
  return std::unique_ptr<Storage>(std::make_unique<RedisStorage>(spec, std::move(*address)));
}

}  // namespace kg::storage

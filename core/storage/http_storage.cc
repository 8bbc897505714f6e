// The HTTP remote (remote.h): GET/PUT/HEAD over libcurl, paths as http_layout.h lays them out.
// libcurl is loaded on the first request (util/curl_library.h), not when the tier is set up: a
// build step that hits its local cache never loads it.
//
// Keep-alive: each object keeps a small pool of libcurl easy handles (each with its own connection
// cache); a call takes one, resets its options (curl_easy_reset keeps the live connections) and
// gives it back, so consecutive calls on one thread reuse one connection, and calls on several
// threads at once get a handle each. Nothing else in the object changes after construction.
//
// Answers are bounded: a record at most k_max_record_bytes, a blob k_max_blob_bytes, through
// CURLOPT_MAXFILESIZE_LARGE (a Content-Length above it) and the write callback (a body that grows
// past it). Redirects are never followed: a bearer token goes only where it was configured to.
#include <dlfcn.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "cache/local_cache.h"
#include "storage/http_layout.h"
#include "storage/remote.h"
#include "util/curl_library.h"
#include "util/hash.h"
#include "util/log.h"

namespace kg::storage {

namespace http {

// libcrypto, loaded when the bazel layout first needs a digest (as libcurl is: util/curl_library.h),
// so that processes that never speak to a remote do not pay for loading it.
struct Crypto {
  int (*digest)(const void* data, size_t count, unsigned char* md, unsigned int* size, const EVP_MD* type,
                ENGINE* impl) = nullptr;
  const EVP_MD* (*sha256)() = nullptr;
  std::string error;
};

static const Crypto& crypto_lib() {
  static const Crypto c = [] {
    Crypto out;
    void* h = ::dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = ::dlerror();
      out.error = std::string("cannot load libcrypto.so.3 (install libssl3): ") + (why != nullptr ? why : "?");
      return out;
    }
    out.digest = reinterpret_cast<decltype(out.digest)>(::dlsym(h, "EVP_Digest"));
    out.sha256 = reinterpret_cast<decltype(out.sha256)>(::dlsym(h, "EVP_sha256"));
    if (out.digest == nullptr || out.sha256 == nullptr) {
      out.error = "libcrypto.so.3 lacks EVP_Digest or EVP_sha256";
    }
    return out;
  }();
  return c;
}

std::string sha256_hex(std::string_view data) {
  const Crypto& c = crypto_lib();
  if (!c.error.empty()) {
    throw std::runtime_error(c.error);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (c.digest(data.data(), data.size(), md, &size, c.sha256(), nullptr) != 1 || size != 32) {
    throw std::runtime_error("OpenSSL could not compute a SHA-256 digest");
  }
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned i = 0; i < 32; ++i) {
    out[2 * i] = k_hex[md[i] >> 4];
    out[2 * i + 1] = k_hex[md[i] & 0xf];
  }
  return out;
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace http

namespace {

constexpr size_t k_max_record_bytes = size_t{1} << 20;
constexpr size_t k_max_blob_bytes = size_t{64} << 20;
constexpr size_t k_max_index_bytes = 256;        // a bazel blob index: 64 hex (and maybe a newline)
constexpr size_t k_max_error_body_bytes = 4096;  // what is read of an error answer (and dropped)
constexpr size_t k_max_token_file_bytes = 64 << 10;
constexpr size_t k_idle_handles = 16;  // easy handles kept for reuse; more may be in use at once

enum class Method { Get, Head, Put };

const char* method_name(Method m) {
  switch (m) {
    case Method::Get:
      return "GET";
    case Method::Head:
      return "HEAD";
    case Method::Put:
      return "PUT";
  }
  return "?";
}

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// Collects a body up to `max` bytes; past that the transfer stops and `too_large` is set.
struct Sink {
  std::string body;
  size_t max = 0;
  bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->body.size() + n > sink->max) {
    sink->too_large = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  sink->body.append(data, n);
  return n;
}

// What one request came to, when the server answered.
struct Reply {
  long status = 0;
  std::string body;
  bool too_large = false;  // the body was larger than the bound given (it is not kept)
};

// Transport failures that mean the remote is unreachable or silent: Timeout kind.
bool is_unreachable(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return true;
    default:
      return false;
  }
}

// The token: the first line of `path`, without surrounding blanks. Errors name the file, never
// its content.
Expected<std::string, Failure> read_token(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail("remote: bearer-token-file=" + path + ": cannot read it: " + std::strerror(errno));
  }
  std::string text(k_max_token_file_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::string token = text.substr(0, text.find('\n'));
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  const size_t start = token.find_first_not_of(" \t");
  token.erase(0, start == std::string::npos ? token.size() : start);
  if (token.empty()) {
    return fail("remote: bearer-token-file=" + path + ": expected a token on its first line, found none");
  }
  for (const char c : token) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return fail("remote: bearer-token-file=" + path + ": the token holds a control character");
    }
  }
  return token;
}

class HttpStorage final : public Storage {
 public:
  HttpStorage(RemoteSpec spec, std::string token)
      : m_spec(std::move(spec)), m_bazel(m_spec.layout == "bazel") {
    m_base = m_spec.url;
    while (!m_base.empty() && m_base.back() == '/') {
      m_base.pop_back();
    }
    m_shown_base = redacted_url(m_base);
    m_describe = "remote " + m_shown_base + " (" + m_spec.layout + ")";
    if (!token.empty()) {
      m_auth_header = "Authorization: Bearer " + token;
    }
  }

  ~HttpStorage() override {
    for (CURL* h : m_idle) {  // only ever filled once libcurl is loaded
      kg::curl::lib().easy_cleanup(h);
    }
  }

  HttpStorage(const HttpStorage&) = delete;
  HttpStorage& operator=(const HttpStorage&) = delete;

  std::string describe() const override { return m_describe; }

  bool read_only() const override { return m_spec.read_only; }

  Expected<cache::AcRecord, Failure> get_record(const std::string& key) override {
    if (!is_digest(key)) {
      return fail(m_describe + ": '" + key.substr(0, 64) + "' is not a cache key", Failure::Kind::NotFound);
    }
    const std::string path = http::record_path(m_bazel, key);
    auto reply = get(path, k_max_record_bytes);
    KG_TRY(reply);
    if (!*reply) {
      return fail("no record for " + key + " in " + m_describe, Failure::Kind::NotFound);
    }
    const Reply& r = **reply;
    if (r.too_large) {
      return damaged("record " + key, path, "larger than " + std::to_string(k_max_record_bytes) + " bytes");
    }
    auto record = cache::parse_record_json(key, r.body);
    if (!record) {
      return damaged("record " + key, path, record.error().message);
    }
    for (const std::string* d : cache::blob_digests(*record)) {
      if (!is_digest(*d)) {
        return damaged("record " + key, path, "a blob digest is not 32 hex digits");
      }
    }
    return std::move(*record);
  }

  Expected<void, Failure> put_record(const cache::AcRecord& record) override {
    KG_TRY(writable());
    if (!is_digest(record.key)) {
      return fail(m_describe + ": cannot store a record under '" + record.key.substr(0, 64) +
                  "': expected a key of 32 hex digits");
    }
    for (const std::string* d : cache::blob_digests(record)) {
      if (!is_digest(*d)) {
        return fail(m_describe + ": record " + record.key + " names '" + d->substr(0, 64) +
                    "', which is not a blob digest");
      }
      auto present = exists(http::blob_lookup_path(m_bazel, *d));
      KG_TRY(present);
      if (!*present) {
        return fail(m_describe + ": record " + record.key + " names blob " + *d +
                    ", which the remote does not hold (store the blobs first)");
      }
    }
    const std::string text = cache::stored_record_text(record);
    if (text.size() > k_max_record_bytes) {
      return fail(m_describe + ": record " + record.key + " is larger than " +
                  std::to_string(k_max_record_bytes) + " bytes");
    }
    return put(http::record_path(m_bazel, record.key), text);
  }

  Expected<std::string, Failure> get_blob(const std::string& digest) override {
    if (!is_digest(digest)) {
      return fail(m_describe + ": '" + digest.substr(0, 64) + "' is not a blob digest",
                  Failure::Kind::NotFound);
    }
    const std::string lookup = http::blob_lookup_path(m_bazel, digest);
    std::string path = lookup;
    if (m_bazel) {
      auto index = get(lookup, k_max_index_bytes);
      KG_TRY(index);
      if (!*index) {
        return fail("no blob " + digest + " in " + m_describe, Failure::Kind::NotFound);
      }
      std::string sha = (*index)->too_large ? std::string() : (*index)->body;
      while (!sha.empty() && (sha.back() == '\n' || sha.back() == '\r')) {
        sha.pop_back();
      }
      if (!http::is_sha256_hex(sha)) {
        return damaged("blob " + digest, lookup, "its index is not a SHA-256 digest");
      }
      path = http::bazel_cas_path(sha);
    }
    auto reply = get(path, k_max_blob_bytes);
    KG_TRY(reply);
    if (!*reply) {
      if (m_bazel) {
        return fail("blob " + digest + " is indexed but missing in " + m_describe, Failure::Kind::NotFound);
      }
      return fail("no blob " + digest + " in " + m_describe, Failure::Kind::NotFound);
    }
    Reply& r = **reply;
    if (r.too_large) {
      return damaged("blob " + digest, path, "larger than " + std::to_string(k_max_blob_bytes) + " bytes");
    }
    if (xxh3_128_hex(r.body) != digest) {
      return damaged("blob " + digest, path, "it failed its digest check");
    }
    return std::move(r.body);
  }

  Expected<std::string, Failure> put_blob(const std::string& content) override {
    KG_TRY(writable());
    if (content.size() > k_max_blob_bytes) {
      return fail(m_describe + ": cannot store a blob of " + std::to_string(content.size()) +
                  " bytes: the limit is " + std::to_string(k_max_blob_bytes));
    }
    const std::string digest = xxh3_128_hex(content);
    // Always a PUT, never "HEAD, then PUT if absent": a copy on the server that was damaged (and
    // that readers therefore refuse) is replaced by the next writer instead of standing forever.
    // Blobs are written when a kernel is generated, not on every build, so the bytes are few.
    if (!m_bazel) {
      KG_TRY(put(http::blob_lookup_path(false, digest), content));
      return digest;
    }
    // Content first, then the index that leads to it: a reader never follows an index to nothing
    // that this writer left behind.
    const std::string sha = http::sha256_hex(content);
    KG_TRY(put(http::bazel_cas_path(sha), content));
    KG_TRY(put(http::blob_lookup_path(true, digest), sha));
    return digest;
  }

  // Remote tiers keep no access times (eviction there is the server's business).
  Expected<bool, Failure> touch(const std::string&) override { return false; }

 private:
  // Hands an easy handle back to the pool when it goes.
  class Lease {
   public:
    explicit Lease(HttpStorage& owner) : m_owner(owner), m_handle(owner.acquire()) {}
    ~Lease() { m_owner.release(m_handle); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    CURL* get() const { return m_handle; }

   private:
    HttpStorage& m_owner;
    CURL* m_handle;
  };

  CURL* acquire() {
    {
      std::lock_guard lock(m_mutex);
      if (!m_idle.empty()) {
        CURL* h = m_idle.back();
        m_idle.pop_back();
        return h;
      }
    }
    return kg::curl::lib().easy_init();
  }

  void release(CURL* h) {
    if (h == nullptr) {
      return;
    }
    {
      std::lock_guard lock(m_mutex);
      if (m_idle.size() < k_idle_handles) {
        m_idle.push_back(h);
        return;
      }
    }
    kg::curl::lib().easy_cleanup(h);
  }

  std::string shown_url(const std::string& path) const { return m_shown_base + "/" + path; }

  Expected<void, Failure> writable() const {
    if (m_spec.read_only) {
      return fail(m_describe + " is read-only");
    }
    return {};
  }

  // A damaged or forged entry: a warning, and a miss.
  Unexpected<Failure> damaged(const std::string& what, const std::string& path,
                              const std::string& why) const {
    const std::string message =
        m_describe + ": " + what + " at " + shown_url(path) + " is damaged (" + why + "); ignored";
    KG_LOG_WARN(message);
    return fail(message, Failure::Kind::NotFound);
  }

  // One request. Returns the server's answer, whatever its status (the body bounded by
  // `max_body`, and dropped beyond it). Errors: Timeout (no connection, no answer in time),
  // Error (any other transport failure).
  Expected<Reply, Failure> call(Method method, const std::string& path, std::string_view body,
                                size_t max_body) {
    KG_TRY(kg::curl::load());
    Lease lease(*this);
    CURL* h = lease.get();
    const std::string shown = std::string(method_name(method)) + " " + shown_url(path);
    if (h == nullptr) {
      return fail(m_describe + ": " + shown + ": cannot start a libcurl transfer");
    }
    kg::curl::lib().easy_reset(h);
    const std::string url = m_base + "/" + path;
    curl_slist* headers = nullptr;
    headers = kg::curl::lib().slist_append(headers, "Expect:");  // no 100-continue round trip
    if (method == Method::Put) {
      headers = kg::curl::lib().slist_append(headers, "Content-Type: application/octet-stream");
    }
    if (!m_auth_header.empty()) {
      headers = kg::curl::lib().slist_append(headers, m_auth_header.c_str());
    }
    std::unique_ptr<curl_slist, decltype(kg::curl::Api::slist_free_all)> header_list(headers, kg::curl::lib().slist_free_all);
    char errbuf[CURL_ERROR_SIZE] = {0};
    Sink sink;
    sink.max = max_body;

    kg::curl::lib().easy_setopt(h, CURLOPT_URL, url.c_str());
    kg::curl::lib().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    kg::curl::lib().easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    kg::curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    kg::curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "kernelgen");
    kg::curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    kg::curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    kg::curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(m_spec.timeout_s * 1000)));
    kg::curl::lib().easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::ceil(m_spec.connect_timeout_s * 1000)));
    kg::curl::lib().easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    kg::curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    kg::curl::lib().easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    switch (method) {
      case Method::Get:
        // A Content-Length above the bound fails before any of the body is read.
        kg::curl::lib().easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body));
        break;
      case Method::Head:
        kg::curl::lib().easy_setopt(h, CURLOPT_NOBODY, 1L);
        break;
      case Method::Put:
        // The body from memory: libcurl can send it again itself when a kept-alive connection
        // turns out to be closed.
        kg::curl::lib().easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        kg::curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
        kg::curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        break;
    }

    const CURLcode code = kg::curl::lib().easy_perform(h);
    Reply reply;
    kg::curl::lib().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
    if (code == CURLE_FILESIZE_EXCEEDED || (code == CURLE_WRITE_ERROR && sink.too_large)) {
      reply.too_large = true;
      return reply;
    }
    if (code != CURLE_OK) {
      const std::string detail = errbuf[0] != '\0' ? errbuf : kg::curl::lib().easy_strerror(code);
      if (code == CURLE_OPERATION_TIMEDOUT) {
        return fail(m_describe + ": " + shown + ": no answer within " + format_seconds(m_spec.timeout_s) +
                        " (the remote's timeout=)",
                    Failure::Kind::Timeout);
      }
      if (is_unreachable(code)) {
        return fail(m_describe + ": " + shown + ": " + detail, Failure::Kind::Timeout);
      }
      return fail(m_describe + ": " + shown + ": " + detail);
    }
    reply.body = std::move(sink.body);
    return reply;
  }

  // An answer that is not what the caller handles: an Error naming the URL and the status.
  Unexpected<Failure> status_error(Method method, const std::string& path, long status) const {
    std::string message =
        m_describe + ": " + method_name(method) + " " + shown_url(path) + ": HTTP " + std::to_string(status);
    if (status == 401 || status == 403) {
      message +=
          m_spec.bearer_token_file.empty()
              ? " (the server wants a token: give one with bearer-token-file=PATH)"
              : " (the server refused the token from bearer-token-file=" + m_spec.bearer_token_file + ")";
    } else if (status == 413) {
      message += " (the server refused the body as too large)";
    }
    return fail(message);
  }

  // The body at `path`; nullopt when the server has none (404). Errors as call(), and Error for
  // any status but 200 and 404.
  Expected<std::optional<Reply>, Failure> get(const std::string& path, size_t max_body) {
    auto reply = call(Method::Get, path, {}, max_body);
    KG_TRY(reply);
    if (reply->status == 404) {
      return std::optional<Reply>();
    }
    if (reply->status != 200) {
      return status_error(Method::Get, path, reply->status);
    }
    return std::optional<Reply>(std::move(*reply));
  }

  // Whether the server holds `path` (HEAD). Errors as get().
  Expected<bool, Failure> exists(const std::string& path) {
    auto reply = call(Method::Head, path, {}, k_max_error_body_bytes);
    KG_TRY(reply);
    if (reply->status == 404) {
      return false;
    }
    if (reply->status != 200) {
      return status_error(Method::Head, path, reply->status);
    }
    return true;
  }

  // Stores `body` at `path`. Errors as call(), and Error for any status outside 2xx.
  Expected<void, Failure> put(const std::string& path, std::string_view body) {
    auto reply = call(Method::Put, path, body, k_max_error_body_bytes);
    KG_TRY(reply);
    if (reply->status < 200 || reply->status > 299) {
      return status_error(Method::Put, path, reply->status);
    }
    return {};
  }

  const RemoteSpec m_spec;
  const bool m_bazel;
  std::string m_base;        // the URL without trailing slashes
  std::string m_shown_base;  // the same, redacted (messages)
  std::string m_describe;
  std::string m_auth_header;  // "" or "Authorization: Bearer <token>"; never in a message
  std::mutex m_mutex;         // guards m_idle
  std::vector<CURL*> m_idle;
};

}  // namespace

Expected<std::unique_ptr<Storage>, Failure> make_http_storage(const RemoteSpec& spec) {
  if (spec.layout == "bazel" && !http::crypto_lib().error.empty()) {
    return fail("remote " + redacted_url(spec.url) + ": the bazel layout needs SHA-256: " + http::crypto_lib().error);
  }
  if (spec.scheme != "http" && spec.scheme != "https") {
    return fail("remote " + redacted_url(spec.url) + ": expected an http:// or https:// URL");
  }
  if (spec.layout != "webdav" && spec.layout != "bazel") {
    return fail("remote " + redacted_url(spec.url) + ": layout: expected webdav or bazel, found '" +
                spec.layout + "'");
  }
  if (!(spec.timeout_s > 0) || !(spec.connect_timeout_s > 0)) {
    return fail("remote " + redacted_url(spec.url) + ": expected timeouts above 0 seconds");
  }
  std::string token;
  if (!spec.bearer_token_file.empty()) {
    auto read = read_token(spec.bearer_token_file);
    KG_TRY(read);
    token = std::move(*read);
  }
  return std::unique_ptr<Storage>(std::make_unique<HttpStorage>(spec, std::move(token)));
}

}  // namespace kg::storage

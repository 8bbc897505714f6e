// A small HTTP/1.1 client for the HTTP remote's plain http:// URLs (http_storage.cc), so that a
// remote hit does not load libcurl: dlopen of libcurl.so.4 and its thirty libraries, with
// curl_global_init, costs 11-17 ms per process on a 2-core machine (measured), more than the rest
// of a remote hit together. https:// stays with libcurl (util/curl_library.h).
//
// What it speaks: GET, HEAD and PUT with Content-Length bodies; answers with Content-Length,
// chunked transfer coding, or a body to the end of the connection; keep-alive with a small pool
// of idle connections (calls from several threads run at once, each on its own connection). A
// pooled connection that the server closed while idle is replaced and the request sent again
// (every request here may be repeated). No redirects, no proxies, no TLS, no 100-continue.
//
// Bounds: the status line and headers at most 64 KiB; a body at most the caller's max_body (a
// larger Content-Length is refused before the body is read; a chunked or unbounded body stops
// at the bound); the whole request at most timeout_s, connecting at most connect_timeout_s.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.h"

namespace kg::storage::http {

// Where an http:// URL points. `basic_auth` is "Authorization: Basic ..." when the URL has user
// information (never shown in messages), else empty.
struct PlainTarget {
  std::string host;         // without brackets for an IPv6 literal
  std::string port = "80";  // decimal text
  std::string host_header;  // "Host: host:port"
  std::string path_prefix;  // "/kernelgen" (no trailing slash; may be empty)
  std::string basic_auth;
};

// Parses http://[user[:password]@]host[:port][/path]. Errors (never naming the user info): not
// http://, no host, a bad port, an unclosed '['.
Expected<PlainTarget, Failure> parse_plain_url(const std::string& url);

struct PlainResponse {
  long status = 0;
  std::string body;
  bool too_large = false;  // the body was over max_body (not kept)
};

class PlainClient {
 public:
  // `headers`: extra header lines sent with every request (e.g. "Authorization: Bearer ...").
  PlainClient(PlainTarget target, double timeout_s, double connect_timeout_s, std::vector<std::string> headers);
  ~PlainClient();
  PlainClient(const PlainClient&) = delete;
  PlainClient& operator=(const PlainClient&) = delete;

  // One request for `path` (appended to the URL's path; starts without '/'); `body` is sent for
  // PUT. Returns the answer, whatever its status. Errors: Timeout (cannot connect, connection
  // refused or reset, no answer within timeout_s, the server closed the connection without an
  // answer); Error (a malformed answer, headers over 64 KiB). Messages never name the user info.
  Expected<PlainResponse, Failure> request(std::string_view method, const std::string& path, std::string_view body,
                                           size_t max_body);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace kg::storage::http

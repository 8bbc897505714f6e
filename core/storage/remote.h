// Remote storage tiers (docs/design.md §7): a team's shared cache over HTTP (a plain WebDAV server
// such as nginx, or bazel-remote) or Redis. Configured by one URL with ccache-style attributes:
//
//   http://cache.example:8080/kernelgen                       WebDAV layout: <url>/ac/<key>, <url>/cas/<digest>
//   http://bazel-remote:9090|layout=bazel                      bazel-remote: /ac/<sha256>, /cas/<sha256 of content>
//   https://cache.example/kg|read-only|bearer-token-file=/etc/kg/token
//   redis://localhost:6379|read-only                           keys kernelgen:ac:<key>, kernelgen:cas:<digest>
//   redis://:password@host:6379/2                              (database 2; a password in the URL is never printed)
//
// Attributes: read-only; layout=webdav|bazel (HTTP only; default webdav); bearer-token-file=PATH
// (HTTP only; the first line of the file); timeout=SECONDS (each request; default 2);
// connect-timeout=SECONDS (default 1). Every backend re-checks what it reads (records name their
// key, blobs hash to their digest): a damaged or forged entry is a miss and a warning.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "storage/storage.h"
#include "util/expected.h"

namespace kg::storage {

struct RemoteSpec {
  std::string url;             // without the attributes
  std::string scheme;          // "http", "https", "redis"
  bool read_only = false;
  std::string layout = "webdav";  // HTTP: "webdav" | "bazel"
  std::string bearer_token_file;
  double timeout_s = 2;
  double connect_timeout_s = 1;
};

// Parses `text` (the remote setting). Errors say what was expected: an unknown scheme, an unknown
// attribute (with the known ones), a bad number, layout=bazel on redis://.
Expected<RemoteSpec, Failure> parse_remote(std::string_view text);

// The URL for messages: any password or user info removed.
std::string redacted_url(const std::string& url);

// The backend for `spec`: make_http_storage or make_redis_storage. Creating it does not contact
// the server (the first request does), so a remote that is down costs nothing until used.
Expected<std::unique_ptr<Storage>, Failure> make_remote_storage(const RemoteSpec& spec);

// http_storage.cc: GET/PUT/HEAD over libcurl, keep-alive (one connection cache per object),
// timeouts; the bazel layout addresses CAS entries by the SHA-256 of their content and keeps the
// AC under sha256("kernelgen-ac:" + key).
Expected<std::unique_ptr<Storage>, Failure> make_http_storage(const RemoteSpec& spec);

// redis_storage.cc: GET/SET (SET NX for blobs) over libhiredis, with the spec's timeouts.
Expected<std::unique_ptr<Storage>, Failure> make_redis_storage(const RemoteSpec& spec);

}  // namespace kg::storage

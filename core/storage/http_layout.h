// Where the HTTP remote (http_storage.cc) keeps records and blobs, relative to its base URL.
// Private to storage/http_storage.cc and its test.
//
// layout=webdav (any server that stores what is PUT and serves it back, e.g. nginx's dav module):
//   ac/<key>                 the record, as the local cache stores it (cache::stored_record_text)
//   cas/<digest>             the blob; digest = XXH3-128 hex of the content, as everywhere else
//
// layout=bazel (bazel-remote, which checks that a CAS entry's name is the SHA-256 of its body):
//   ac/<sha256("kernelgen-ac:" + key)>       the record (same JSON; its digests stay XXH3-128)
//   cas/<sha256(content)>                    the blob
//   ac/<sha256("kernelgen-cas:" + digest)>   the blob's index: 64 hex, the SHA-256 of its content
// A blob is found from its XXH3 digest through its index, then checked against the XXH3 digest as
// in any tier: a stale or forged index is a miss. The prefixes keep records and indexes apart,
// and both apart from Bazel's own action keys. bazel-remote must run with
// --disable_http_ac_validation: these AC entries are not Bazel ActionResult protos.
// All names are lowercase hex, so no path built here holds anything a server could misread.
#pragma once

#include <string>
#include <string_view>

namespace kg::storage::http {

// SHA-256 of `data` as 64 lowercase hex digits (OpenSSL's EVP_Digest).
std::string sha256_hex(std::string_view data);

// True when `s` is 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);

// The record of `key`, relative to the base URL ("ac/..."). `bazel`: the bazel layout.
inline std::string record_path(bool bazel, const std::string& key) {
  return "ac/" + (bazel ? sha256_hex("kernelgen-ac:" + key) : key);
}

// webdav: the blob of `digest`. bazel: the blob's index.
inline std::string blob_lookup_path(bool bazel, const std::string& digest) {
  return bazel ? "ac/" + sha256_hex("kernelgen-cas:" + digest) : "cas/" + digest;
}

// bazel: the blob whose content has SHA-256 `sha256`.
inline std::string bazel_cas_path(const std::string& sha256) { return "cas/" + sha256; }

}  // namespace kg::storage::http

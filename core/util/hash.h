// Content hashing: XXH3-128, rendered as 32 lowercase hex digits (high half first).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kg {

// Digest of `data`.
std::string xxh3_128_hex(std::string_view data);

// Digest of several fields, each framed by its length so that ("ab","c") and ("a","bc") differ.
std::string xxh3_128_hex_fields(const std::vector<std::string_view>& fields);

// True when `s` looks like a digest produced above (32 lowercase hex digits).
bool is_digest(std::string_view s);

}  // namespace kg

// Finding a cache record from what a person types: a whole key or a unique prefix of one.
#pragma once

#include <string>

#include "cache/local_cache.h"
#include "util/expected.h"

namespace kg::cli {

// The record of `key_or_prefix`. Errors: NotFound (no such key; the message names the cache and
// says `kernelgen cache ls` lists the keys), an ambiguous prefix (two of the keys it matches),
// cache errors.
Expected<cache::AcRecord, Failure> find_record(cache::LocalCache& cache, const std::string& key_or_prefix);

}  // namespace kg::cli

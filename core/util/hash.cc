#include "util/hash.h"

#include <xxhash.h>

#include <cstdint>
#include <cstdio>

namespace kg {

namespace {

std::string to_hex(XXH128_hash_t h) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(buf, 32);
}

}  // namespace

std::string xxh3_128_hex(std::string_view data) {
  return to_hex(XXH3_128bits(data.data(), data.size()));
}

std::string xxh3_128_hex_fields(const std::vector<std::string_view>& fields) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  for (std::string_view f : fields) {
    uint64_t len = f.size();
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) {
      le[i] = static_cast<unsigned char>(len >> (8 * i));
    }
    XXH3_128bits_update(state, le, sizeof le);
    XXH3_128bits_update(state, f.data(), f.size());
  }
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return to_hex(h);
}

bool is_digest(std::string_view s) {
  if (s.size() != 32) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace kg

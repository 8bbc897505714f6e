#include "util/reproducible.h"

#include <sys/stat.h>

#include <string_view>
#include <utility>

#include "util/file.h"

namespace kg {

namespace {

constexpr std::string_view kPrefix = "tmpxft_";
constexpr size_t kDigits = 8;

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// True when bytes[at, at + n) are all hex digits.
bool hex_run(const std::string& bytes, size_t at, size_t n) {
  if (at + n > bytes.size()) {
    return false;
  }
  for (size_t i = at; i < at + n; ++i) {
    if (!is_hex(bytes[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace

size_t zero_nvcc_temp_names(std::string& bytes) {
  size_t count = 0;
  size_t pos = 0;
  while ((pos = bytes.find(kPrefix, pos)) != std::string::npos) {
    const size_t pid = pos + kPrefix.size();
    const size_t counter = pid + kDigits + 1;
    pos = pid;
    if (!hex_run(bytes, pid, kDigits) || bytes[pid + kDigits] != '_' || !hex_run(bytes, counter, kDigits)) {
      continue;
    }
    bool changed = false;
    for (size_t i : {pid, counter}) {
      for (size_t j = i; j < i + kDigits; ++j) {
        changed = changed || bytes[j] != '0';
        bytes[j] = '0';
      }
    }
    count += changed ? 1 : 0;
    pos = counter + kDigits;
  }
  return count;
}

Expected<size_t, Failure> zero_nvcc_temp_names_in_file(const std::string& path) {
  auto read = read_file(path);
  if (!read) {
    return unexpected(read.error());
  }
  std::string bytes = std::move(*read);
  const size_t count = zero_nvcc_temp_names(bytes);
  if (count == 0) {
    return size_t{0};
  }
  struct stat st {};
  const bool have_mode = ::stat(path.c_str(), &st) == 0;
  KG_TRY(write_file_atomic(path, bytes));
  if (have_mode) {
    ::chmod(path.c_str(), st.st_mode & 07777);
  }
  return count;
}

}  // namespace kg

// A private temporary directory for a test, removed with everything in it when the object goes.
// Unit tests only (tests/CMakeLists.txt puts tests/support on their include path).
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace kg::testing {

class TempDir {
 public:
  // Creates $TMPDIR/<prefix>-XXXXXX (TMPDIR defaulting to /tmp), mode 0700; aborts when it cannot.
  explicit TempDir(std::string_view prefix = "kg-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" +
                          std::string(prefix) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::abort();
    }
    m_path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return m_path; }
  // path()/name.
  std::string sub(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

}  // namespace kg::testing

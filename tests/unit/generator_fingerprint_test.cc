// Emitted code is a function of the cache key, and the key names kGeneratorVersion, not the code.
// So any change to what the generators emit must come with a new kGeneratorVersion, or caches
// would keep serving the old kernels under the old keys. This test holds the two together: it
// hashes everything emitted for the spec library and compares with tests/data/generator_fingerprint.txt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "codegen/codegen.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/file.h"
#include "util/hash.h"
#include "version.h"

namespace kg {
namespace {

namespace fs = std::filesystem;

std::string emitted_fingerprint() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(KG_SOURCE_DIR) / "specs")) {
    if (entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const fs::path& file : files) {
    auto spec = spec::load_spec_file(file.string());
    EXPECT_TRUE(spec) << file;
    if (!spec) {
      continue;
    }
    // A fixed key in the provenance line: the fingerprint is of the code the generators write, and
    // keys (which also change with the prompt and verifier versions) have their own golden file.
    const std::string key(32, '0');
    codegen::Provenance prov{spec->name, key};
    all += codegen::emit_template_kernel(*spec, prov, kDefaultArch);
    all += codegen::emit_header(*spec, prov);
    all += codegen::emit_reference_kernel(*spec, prov);
  }
  return xxh3_128_hex(all);
}

TEST(GeneratorFingerprint, EmittedCodeChangesOnlyWithTheGeneratorVersion) {
  const fs::path path = fs::path(KG_TEST_DATA_DIR) / "generator_fingerprint.txt";
  const std::string actual = std::string(kGeneratorVersion) + " " + emitted_fingerprint();
  if (const char* update = std::getenv("KG_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    ASSERT_TRUE(write_file_atomic(path.string(),
                                  "# kGeneratorVersion, then XXH3-128 of all code emitted for specs/ "
                                  "(tests/unit/generator_fingerprint_test.cc)\n" +
                                      actual + "\n"));
    GTEST_SKIP() << "rewrote " << path;
  }
  auto text = read_file(path.string());
  ASSERT_TRUE(text) << text.error().message;
  std::istringstream in(*text);
  std::string line, recorded;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != '#') {
      recorded = line;
    }
  }
  const std::string recorded_version = recorded.substr(0, recorded.find(' '));
  if (recorded_version == kGeneratorVersion) {
    EXPECT_EQ(recorded, actual) << "the generators now emit different code, but kGeneratorVersion is still "
                                << kGeneratorVersion
                                << ": bump it in core/version.h, then run this test with KG_UPDATE_GOLDEN=1 "
                                   "(and SpecLibrary.GoldenKeys likewise)";
  } else {
    EXPECT_EQ(recorded, actual) << "kGeneratorVersion changed: run this test and SpecLibrary.GoldenKeys with "
                                   "KG_UPDATE_GOLDEN=1 to record the new fingerprint and keys";
  }
}

}  // namespace
}  // namespace kg

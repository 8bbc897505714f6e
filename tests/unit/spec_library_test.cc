// The spec library in specs/: every file parses, is named after its file, and has the key
// recorded in tests/data/golden_keys.txt. Plus a few semantic checks of the library's masks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "spec/interpret.h"
#include "spec/key.h"
#include "spec/spec.h"
#include "util/file.h"

namespace kg::spec {
namespace {

namespace fs = std::filesystem;

const char* kGoldenArch = "sm_90a";

std::vector<fs::path> spec_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(KG_SOURCE_DIR) / "specs")) {
    if (entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

Spec load(const std::string& name) {
  auto r = load_spec_file((fs::path(KG_SOURCE_DIR) / "specs" / (name + ".yaml")).string());
  EXPECT_TRUE(r) << name;
  return r ? *r : Spec{};
}

TEST(SpecLibrary, EveryFileParsesAndIsNamedAfterItsFile) {
  const auto files = spec_files();
  ASSERT_GE(files.size(), 14u);
  std::set<std::string> names;
  for (const fs::path& file : files) {
    auto r = load_spec_file(file.string());
    if (!r) {
      ADD_FAILURE() << r.error()[0].str();
      continue;
    }
    EXPECT_EQ(r->name + ".yaml", file.filename().string());
    EXPECT_TRUE(names.insert(r->name).second) << "duplicate name " << r->name;
  }
}

// Regenerate with KG_UPDATE_GOLDEN=1 (see the file's header).
TEST(SpecLibrary, GoldenKeys) {
  const fs::path golden = fs::path(KG_TEST_DATA_DIR) / "golden_keys.txt";
  std::map<std::string, std::string> actual;
  for (const fs::path& file : spec_files()) {
    auto spec = load_spec_file(file.string());
    ASSERT_TRUE(spec) << spec.error()[0].str();
    actual[file.filename().string()] = spec_key(*spec, kGoldenArch);
  }
  auto text = read_file(golden.string());
  ASSERT_TRUE(text) << text.error().message;
  std::string header;
  std::map<std::string, std::string> recorded;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') {
      header += line + "\n";
      continue;
    }
    std::istringstream fields(line);
    std::string file, key;
    fields >> file >> key;
    recorded[file] = key;
  }
  if (const char* update = std::getenv("KG_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    std::string out = header;
    for (const auto& [file, key] : actual) {
      out += file + " " + key + "\n";
    }
    ASSERT_TRUE(write_file_atomic(golden.string(), out));
    GTEST_SKIP() << "rewrote " << golden;
  }
  for (const auto& [file, key] : actual) {
    auto it = recorded.find(file);
    if (it == recorded.end()) {
      ADD_FAILURE() << "specs/" << file << " is missing from " << golden
                    << " (regenerate: see the file's header)";
    } else {
      EXPECT_EQ(it->second, key) << "key of specs/" << file << " changed; if intended, regenerate " << golden;
    }
  }
  for (const auto& [file, key] : recorded) {
    EXPECT_TRUE(actual.count(file)) << golden << " lists " << file << ", which is not in specs/";
  }
}

RuntimeValues sizes(int sq, int skv) {
  RuntimeValues rt;
  rt.heads_q = rt.heads_kv = 8;
  rt.seqlen_q = sq;
  rt.seqlen_kv = skv;
  return rt;
}

TEST(SpecLibrary, NeighborhoodWindowIsAlways13By13) {
  const Spec spec = load("neighborhood_2d");
  const RuntimeValues rt = sizes(4096, 4096);
  for (int q : {0, 5, 6, 63, 64 * 6 + 6, 64 * 30 + 31, 4095, 64 * 63}) {
    int count = 0;
    for (int kv = 0; kv < 4096; ++kv) {
      count += eval_mask_mod(spec, rt, 0, 0, q, kv);
    }
    EXPECT_EQ(count, 169) << "q_idx " << q;
    EXPECT_TRUE(eval_mask_mod(spec, rt, 0, 0, q, q)) << "sees itself";
  }
  EXPECT_TRUE(eval_mask_mod(spec, rt, 0, 0, 0, 12 * 64 + 12));  // corner: window shifted inwards
  EXPECT_FALSE(eval_mask_mod(spec, rt, 0, 0, 0, 13));
}

TEST(SpecLibrary, AlibiSlopes) {
  const Spec spec = load("alibi_causal");
  RuntimeValues rt = sizes(16, 16);
  rt.params = {8};  // num_heads
  // slope(h) = 2^(-8 (h+1) / 8) = 2^-(h+1)
  EXPECT_DOUBLE_EQ(eval_score_mod(spec, rt, 1.0, 0, 0, 5, 1), 1.0 - 0.5 * 4);
  EXPECT_DOUBLE_EQ(eval_score_mod(spec, rt, 1.0, 0, 2, 5, 1), 1.0 - 0.125 * 4);
}

TEST(SpecLibrary, WindowsAndPrefix) {
  const RuntimeValues rt = sizes(4096, 4096);
  const Spec window = load("sliding_window");
  EXPECT_TRUE(eval_mask_mod(window, rt, 0, 0, 2000, 2000 - 1023));
  EXPECT_FALSE(eval_mask_mod(window, rt, 0, 0, 2000, 2000 - 1024));
  EXPECT_FALSE(eval_mask_mod(window, rt, 0, 0, 2000, 2001));
  const Spec dilated = load("dilated_sliding_window");
  EXPECT_TRUE(eval_mask_mod(dilated, rt, 0, 0, 100, 92));
  EXPECT_FALSE(eval_mask_mod(dilated, rt, 0, 0, 100, 94));
  EXPECT_FALSE(eval_mask_mod(dilated, rt, 0, 0, 100, 104));
  const Spec prefix = load("prefix_lm");
  RuntimeValues prt = sizes(64, 64);
  prt.params = {10};
  EXPECT_TRUE(eval_mask_mod(prefix, prt, 0, 0, 2, 9));
  EXPECT_FALSE(eval_mask_mod(prefix, prt, 0, 0, 2, 10));
  EXPECT_TRUE(eval_mask_mod(prefix, prt, 0, 0, 20, 15));
  const Spec softcap = load("softcap_causal");
  EXPECT_NEAR(eval_score_mod(softcap, rt, 1000.0, 0, 0, 0, 0), 30.0, 1e-9);
}

TEST(SpecLibrary, DocumentMask) {
  const Spec spec = load("document_mask");
  std::vector<int32_t> q_doc = {0, 0, 1, 1, 7, 7, 7, 8};  // [batch 2, seq 4]
  RuntimeValues rt = sizes(4, 4);
  rt.batch = 2;
  rt.tensors = {q_doc.data(), q_doc.data()};
  EXPECT_TRUE(eval_mask_mod(spec, rt, 0, 0, 1, 0));
  EXPECT_FALSE(eval_mask_mod(spec, rt, 0, 0, 2, 1));
  EXPECT_TRUE(eval_mask_mod(spec, rt, 1, 0, 0, 2));
  EXPECT_FALSE(eval_mask_mod(spec, rt, 1, 0, 3, 2));
}

}  // namespace
}  // namespace kg::spec

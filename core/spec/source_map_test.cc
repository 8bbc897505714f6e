#include "spec/source_map.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace kg::spec {
namespace {

// Position of the first occurrence of `needle` in the value of key `key`.
std::string where(const std::string& yaml, const std::string& key, const std::string& needle) {
  const YAML::Node root = YAML::Load(yaml);
  const YAML::Node node = root[key];
  const std::string value = node.Scalar();
  const LineIndex lines(yaml);
  const auto map = ScalarSourceMap::build(yaml, lines, static_cast<size_t>(node.Mark().pos), value);
  const size_t at = needle.empty() ? value.size() : value.find(needle);
  const SourcePos p = map.at(at);
  return std::to_string(p.line) + ":" + std::to_string(p.col);
}

TEST(SourceMap, Styles) {
  EXPECT_EQ(where("a: 1\nm: x + yy\n", "m", "yy"), "2:8");                    // plain
  EXPECT_EQ(where("m: \"x + yy\"\n", "m", "yy"), "1:9");                      // double-quoted
  EXPECT_EQ(where("m: \"x \\\" yy\"\n", "m", "yy"), "1:10");                  // with an escape
  EXPECT_EQ(where("m: 'it''s yy'\n", "m", "yy"), "1:11");                     // single-quoted
  EXPECT_EQ(where("m: |  # note\n    a = 1\n      yy\n", "m", "yy"), "3:7");  // literal block
  EXPECT_EQ(where("m: >-\n  a\n  yy\n", "m", "yy"), "3:3");                   // folded block
  EXPECT_EQ(where("m: x +\n  yy\nn: 1\n", "m", "yy"), "2:3");                 // multi-line plain
  EXPECT_EQ(where("m: x + yy   # c\n", "m", ""), "1:10");                     // end of expression
  EXPECT_EQ(where("m: |\n  x\n  yy\n\nn: 1\n", "m", ""), "3:5");              // end of a block
}

TEST(SourceMap, LineIndex) {
  const LineIndex lines("ab\ncd\n");
  EXPECT_EQ(lines.at(0).line, 1);
  EXPECT_EQ(lines.at(4).line, 2);
  EXPECT_EQ(lines.at(4).col, 2);
}

}  // namespace
}  // namespace kg::spec

namespace kg::spec {
namespace {

// Escapes after a long run of blanks: each escape used to rescan the run (quadratic).
TEST(SourceMap, EscapesAfterLongBlanksAreLinear) {
  const std::string text = "k: \"a\n" + std::string(200000, ' ') + [] {
    std::string s;
    for (int i = 0; i < 50000; ++i) {
      s += "\\x41";
    }
    return s;
  }() + "\"\n";
  const LineIndex lines(text);
  const std::string value = "a " + std::string(50000, 'A');
  const ScalarSourceMap map = ScalarSourceMap::build(text, lines, 3, value);
  EXPECT_EQ(map.at(0).line, 1);
  EXPECT_EQ(map.at(0).col, 5);
  EXPECT_EQ(map.at(3).line, 2);  // escapes map to where the previous one stopped
  EXPECT_EQ(map.at(value.size() - 1).line, 2);
}

}  // namespace
}  // namespace kg::spec

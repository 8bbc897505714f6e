#include "lock/lockfile.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.h"
#include "util/file.h"

namespace kg::lock {
namespace {

const std::string kKey1 = "0123456789abcdef0123456789abcdef";
const std::string kKey2 = "fedcba9876543210fedcba9876543210";
const std::string kDigest1 = "00000000000000000000000000000001";
const std::string kDigest2 = "00000000000000000000000000000002";

LockEntry entry(const std::string& spec, const std::string& name, const std::string& key = kKey1,
                const std::string& kernel = kDigest1) {
  return LockEntry{spec, name, "sm_90a", key, kernel, "tmpl-16", "unverified"};
}

// One valid entry as JSON text, with `field` replaced by `value` (raw JSON) when given.
std::string entry_json(const std::string& field = "", const std::string& value = "") {
  std::map<std::string, std::string> f = {{"arch", "\"sm_90a\""},  {"generator", "\"tmpl-16\""},
                                          {"kernel", "\"" + kDigest1 + "\""}, {"key", "\"" + kKey1 + "\""},
                                          {"name", "\"causal\""}, {"spec", "\"specs/causal.yaml\""},
                                          {"verification", "\"unverified\""}};
  if (!field.empty()) {
    f[field] = value;
  }
  std::string s = "{";
  for (const auto& [k, v] : f) {
    s += (s.size() > 1 ? ", " : "") + ("\"" + k + "\": ") + v;
  }
  return s + "}";
}

std::string doc(const std::string& entries, const std::string& format = "1") {
  return "{\n  \"format\": " + format + ",\n  \"entries\": [" + entries + "]\n}\n";
}

std::string error_of(std::string_view text) {
  auto r = parse_lockfile(text, "kernelgen.lock");
  return r ? std::string("(parsed)") : r.error().message;
}

TEST(Lockfile, RoundTripsThroughText) {
  Lockfile lock({entry("specs/b.yaml", "b", kKey2, kDigest2), entry("specs/a.yaml", "a"),
                 LockEntry{"../other/c.yaml", "c", "sm_80", kKey1, kDigest2, "llm:deepseek-reasoner:prompt-1", "verified"}});
  auto text = lockfile_text(lock);
  ASSERT_TRUE(text) << text.error().message;
  auto back = parse_lockfile(*text, "kernelgen.lock");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->entries(), lock.entries());
  ASSERT_EQ(back->entries().size(), 3u);
  EXPECT_EQ(back->entries()[0].spec, "../other/c.yaml");  // sorted by spec, byte order
  EXPECT_EQ(back->entries()[1].spec, "specs/a.yaml");
}

TEST(Lockfile, OutputIsSortedStableAndExact) {
  Lockfile one({entry("z.yaml", "z"), entry("a.yaml", "a", kKey2, kDigest2)});
  Lockfile two({entry("a.yaml", "a", kKey2, kDigest2), entry("z.yaml", "z")});
  auto t1 = lockfile_text(one);
  auto t2 = lockfile_text(two);
  ASSERT_TRUE(t1 && t2);
  EXPECT_EQ(*t1, *t2);
  // Written again from what was read: the same bytes.
  auto reread = parse_lockfile(*t1, "x");
  ASSERT_TRUE(reread);
  EXPECT_EQ(lockfile_text(*reread).value(), *t1);
  Lockfile single({entry("specs/causal.yaml", "causal")});
  EXPECT_EQ(lockfile_text(single).value(),
            "{\n"
            "  \"about\": \"kernelgen lockfile: the kernel each spec resolves to. Written by `kernelgen lock`; a build "
            "with LOCKFILE fails when it would emit anything else. Accept a change with `kernelgen lock --update "
            "SPEC`.\",\n"
            "  \"entries\": [\n"
            "    {\n"
            "      \"arch\": \"sm_90a\",\n"
            "      \"generator\": \"tmpl-16\",\n"
            "      \"kernel\": \"00000000000000000000000000000001\",\n"
            "      \"key\": \"0123456789abcdef0123456789abcdef\",\n"
            "      \"name\": \"causal\",\n"
            "      \"spec\": \"specs/causal.yaml\",\n"
            "      \"verification\": \"unverified\"\n"
            "    }\n"
            "  ],\n"
            "  \"format\": 1\n"
            "}\n");
  EXPECT_EQ(lockfile_text(Lockfile()).value().find("\"entries\": []"), lockfile_text(Lockfile()).value().find("\"entries\""));
}

TEST(Lockfile, FindsBySpecAndByNameAndArch) {
  Lockfile lock({entry("specs/a.yaml", "a"), entry("specs/b.yaml", "b"), entry("x/b.yaml", "b")});
  ASSERT_NE(lock.find("specs/a.yaml"), nullptr);
  EXPECT_EQ(lock.find("specs/a.yaml")->name, "a");
  EXPECT_EQ(lock.find("specs/c.yaml"), nullptr);
  EXPECT_EQ(lock.find("specs/a.yam"), nullptr);
  ASSERT_NE(lock.find_name_arch("a", "sm_90a"), nullptr);
  EXPECT_EQ(lock.find_name_arch("a", "sm_80"), nullptr);
  EXPECT_EQ(lock.find_name_arch("b", "sm_90a"), nullptr);  // two of them: ambiguous
  lock.put(entry("specs/a.yaml", "a", kKey2));
  EXPECT_EQ(lock.entries().size(), 3u);
  EXPECT_EQ(lock.find("specs/a.yaml")->key, kKey2);
  lock.put(entry("0.yaml", "zero"));
  EXPECT_EQ(lock.entries().front().spec, "0.yaml");
}

TEST(Lockfile, WritesAtomicallyAndOnlyWhenChanged) {
  testing::TempDir dir("kg-lock-test");
  const std::string path = dir.sub("kernelgen.lock");
  Lockfile lock({entry("a.yaml", "a")});
  auto wrote = write_lockfile(path, lock);
  ASSERT_TRUE(wrote) << wrote.error().message;
  EXPECT_TRUE(*wrote);
  auto read = read_lockfile(path);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->entries(), lock.entries());
  EXPECT_FALSE(write_lockfile(path, lock).value());
  lock.put(entry("b.yaml", "b"));
  EXPECT_TRUE(write_lockfile(path, lock).value());
  EXPECT_EQ(read_lockfile(path).value().entries().size(), 2u);
  // Nothing left beside it.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST(Lockfile, RefusesToWriteBadEntries) {
  auto dup = lockfile_text(Lockfile({entry("a.yaml", "a"), entry("a.yaml", "b")}));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("spec 'a.yaml' would be locked twice"), std::string::npos);
  auto bad = lockfile_text(Lockfile({entry("a.yaml", "a", "KEY")}));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"key\": expected 32 lowercase hex digits"), std::string::npos)
      << bad.error().message;
  auto utf8 = lockfile_text(Lockfile({entry("\xff.yaml", "a")}));
  ASSERT_FALSE(utf8);
}

TEST(Lockfile, ReadErrors) {
  testing::TempDir dir("kg-lock-test");
  auto missing = read_lockfile(dir.sub("nope.lock"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, Failure::Kind::NotFound);
  EXPECT_NE(missing.error().message.find("nope.lock"), std::string::npos);
  auto directory = read_lockfile(dir.path());
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().kind, Failure::Kind::Error);
  EXPECT_NE(directory.error().message.find("expected a regular file, found a directory"), std::string::npos);
  ASSERT_EQ(::mkfifo(dir.sub("fifo").c_str(), 0600), 0);
  auto fifo = read_lockfile(dir.sub("fifo"));  // refused, not waited on
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("found a special file"), std::string::npos);
}

TEST(Lockfile, RefusesAHugeFileWithoutReadingIt) {
  testing::TempDir dir("kg-lock-test");
  const std::string path = dir.sub("kernelgen.lock");
  {
    std::ofstream out(path);
    out << doc(entry_json());
    out << std::string(kMaxLockfileBytes, ' ');
  }
  auto r = read_lockfile(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(path + ": expected a lockfile of at most 8388608 bytes, found "), std::string::npos)
      << r.error().message;
  const std::string text = doc(entry_json()) + std::string(kMaxLockfileBytes, ' ');
  EXPECT_NE(error_of(text).find("expected a lockfile of at most"), std::string::npos);
}

TEST(Lockfile, BoundsNestingAndValuesBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(error_of(deep), "kernelgen.lock:1:9: expected a lockfile nested at most 8 deep, found deeper nesting");
  std::string many = "[";
  for (size_t i = 0; i < kMaxLockEntries * 21; ++i) {
    many += "1,";
  }
  many += "1]";
  EXPECT_NE(error_of(many).find("expected a lockfile of at most 10000 entries, found more values"), std::string::npos);
  // Keys without values count too (an object of a million keys is refused before it is held).
  std::string keys = "{";
  for (size_t i = 0; i < kMaxLockEntries * 21; ++i) {
    keys += "\"k\" ";
  }
  EXPECT_NE(error_of(keys).find("found more values than that many can hold"), std::string::npos) << error_of(keys);
}

TEST(Lockfile, InvalidJsonIsReportedAtItsLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"format\": 1,\n  \"entries\": [x]\n}\n"),
            "kernelgen.lock:3:15: invalid JSON: syntax error while parsing value - invalid literal; last read: '\"entries\": [x'");
  EXPECT_EQ(error_of(""), "kernelgen.lock:1:1: invalid JSON: syntax error while parsing value - unexpected end of "
                          "input; expected '[', '{', or a literal");
  EXPECT_NE(error_of("{\"format\": 1,").find("kernelgen.lock:1:14: invalid JSON: "), std::string::npos);
  // Control bytes of the file never reach the message raw.
  EXPECT_EQ(error_of("{\"a\": \x1b}").find('\x1b'), std::string::npos);
}

TEST(Lockfile, FormatVersionIsCheckedFirst) {
  EXPECT_EQ(error_of(doc(entry_json("bogus", "1"), "2")),
            "kernelgen.lock:2:13: lockfile format 2 is not supported: this kernelgen reads format 1 (use the kernelgen "
            "that wrote it, or write the lockfile again with `kernelgen lock --update`)");
  EXPECT_EQ(error_of(doc(entry_json(), "\"1\"")),
            "kernelgen.lock:2:13: expected an integer for \"format\", found a string");
  EXPECT_EQ(error_of(doc(entry_json(), "1.0")),
            "kernelgen.lock:2:13: expected an integer for \"format\", found a number (1.0)");
  EXPECT_EQ(error_of("{\"entries\": []}"),
            "kernelgen.lock: expected a \"format\" field (the lockfile format, 1), found none");
  EXPECT_EQ(error_of("{\"format\": 1}"), "kernelgen.lock: expected an \"entries\" field (an array), found none");
  EXPECT_EQ(error_of("[]"),
            "kernelgen.lock:1:1: expected a lockfile (a JSON object with \"format\" and \"entries\"), found an array");
  EXPECT_EQ(error_of("{\"format\": 1, \"entries\": [], \"extra\": 0}"),
            "kernelgen.lock:1:39: unknown field 'extra' (a lockfile has about, entries and format)");
  EXPECT_EQ(error_of("{\"format\": 1, \"entries\": {}}"),
            "kernelgen.lock:1:26: expected an array for \"entries\", found an object");
  EXPECT_EQ(error_of("{\"format\": 1, \"entries\": [], \"about\": 3}"),
            "kernelgen.lock:1:39: expected a string for \"about\", found a number (3)");
}

TEST(Lockfile, WrongTypesAndFormsArePositioned) {
  EXPECT_EQ(error_of(doc("7")), "kernelgen.lock:3:15: expected entry 1 to be an object, found a number (7)");
  const std::string e = entry_json("key", "12");
  // The value's column: after `  "entries": [` and the entry's text up to the key's value.
  const size_t col = 15 + e.find("\"key\": 12") + 7;
  EXPECT_EQ(error_of(doc(e)),
            "kernelgen.lock:3:" + std::to_string(col) + ": expected a string for \"key\" in entry 1, found a number (12)");
  EXPECT_NE(error_of(doc(entry_json("name", "null"))).find("expected a string for \"name\" in entry 1, found null"),
            std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "[\"a\"]"))).find("expected a string for \"spec\" in entry 1, found an array"),
            std::string::npos);
  EXPECT_NE(error_of(doc(entry_json() + ", " + entry_json("arch", "true"))).find("in entry 2, found a boolean"),
            std::string::npos);
  // Lines count: an entry on line 5 is reported there.
  const std::string multi = "{\n  \"format\": 1,\n  \"entries\": [\n" + entry_json() + ",\n\n" +
                            entry_json("verification", "\"failed\"") + "\n  ]\n}\n";
  EXPECT_NE(error_of(multi).find("kernelgen.lock:6:"), std::string::npos) << error_of(multi);
  EXPECT_NE(error_of(multi).find("\"verification\" of entry 2: expected unverified or verified, found 'failed'"),
            std::string::npos);
}

TEST(Lockfile, BadDigestsAndFieldsAreRefused) {
  for (const char* bad : {"\"\"", "\"0123\"", "\"0123456789ABCDEF0123456789ABCDEF\"", "\"0123456789abcdef0123456789abcdeg\"",
                          "\"0123456789abcdef0123456789abcdef0\""}) {
    EXPECT_NE(error_of(doc(entry_json("kernel", bad))).find("\"kernel\" of entry 1: expected 32 lowercase hex digits"),
              std::string::npos)
        << bad;
    EXPECT_NE(error_of(doc(entry_json("key", bad))).find("\"key\" of entry 1: expected 32 lowercase hex digits"),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(error_of(doc(entry_json("arch", "\"90a\""))).find("expected a resolved target architecture such as sm_90a, found '90a'"),
            std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("name", "\"1abc\""))).find("expected the spec's name"), std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("name", "\"a\\u001b[31m\""))).find("found 'a\\x1b[31m'"), std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("generator", "\"\""))).find("expected the name of the generator"), std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "\"/abs/causal.yaml\""))).find("found the absolute path '/abs/causal.yaml'"),
            std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "\"./specs//causal.yaml\""))).find("expected a path in normal form ('specs/causal.yaml')"),
            std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "\"specs/\""))).find("expected the path of a spec file"), std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "\"a\\nb.yaml\""))).find("expected a path of printable characters"), std::string::npos);
  EXPECT_NE(error_of(doc(entry_json("spec", "\"" + std::string(5000, 'a') + "\""))).find("expected a path of at most 4096 bytes"),
            std::string::npos);
  // A valid ../ path is fine.
  EXPECT_EQ(error_of(doc(entry_json("spec", "\"../specs/causal.yaml\""))), "(parsed)");
}

TEST(Lockfile, DuplicatesAreRefused) {
  // A field twice in one entry (a JSON parser would silently keep the last).
  const std::string twice = "{\"arch\": \"sm_90a\", \"arch\": \"sm_80\", " + entry_json().substr(1);
  EXPECT_NE(error_of(doc(twice)).find("field 'arch' appears twice in one object (first at 3:16)"), std::string::npos)
      << error_of(doc(twice));
  EXPECT_NE(error_of("{\"format\": 1, \"format\": 1, \"entries\": []}").find("kernelgen.lock:1:15: field 'format' appears twice"),
            std::string::npos);
  // The same spec twice.
  const std::string e2 = entry_json("key", "\"" + kKey2 + "\"");
  EXPECT_NE(error_of(doc(entry_json() + ", " + e2)).find("spec 'specs/causal.yaml' is locked twice (entries 1 and 2)"),
            std::string::npos);
  // Escaped spellings of one key are one key.
  const std::string escaped = "{\"k\\u0065y\": \"" + kKey1 + "\", " + entry_json().substr(1);
  EXPECT_NE(error_of(doc(escaped)).find("field 'key' appears twice"), std::string::npos) << error_of(doc(escaped));
  // Unknown and missing fields.
  EXPECT_NE(error_of(doc(entry_json("digest", "\"x\""))).find("unknown field 'digest' in entry 1 (expected arch, generator, "
                                                             "kernel, key, name, spec, verification)"),
            std::string::npos);
  EXPECT_NE(error_of(doc("{\"spec\": \"a.yaml\"}")).find("entry 1 lacks the field \"arch\""), std::string::npos);
}

TEST(Lockfile, TooManyEntries) {
  std::string entries;
  for (size_t i = 0; i <= kMaxLockEntries; ++i) {
    entries += (i ? "," : "") + std::string("{}");
  }
  EXPECT_NE(error_of(doc(entries)).find("expected at most 10000 entries, found 10001"), std::string::npos);
}

TEST(Lockfile, SpecPathsAreRelativeToTheLockfilesDirectory) {
  testing::TempDir dir("kg-lock-test");
  const std::string root = std::filesystem::canonical(dir.path()).string();
  std::filesystem::create_directories(root + "/proj/specs");
  std::filesystem::create_directories(root + "/other");
  EXPECT_EQ(lock_spec_path(root + "/proj/kernelgen.lock", root + "/proj/specs/a.yaml"), "specs/a.yaml");
  EXPECT_EQ(lock_spec_path(root + "/proj/kernelgen.lock", root + "/proj/./specs/../specs/a.yaml"), "specs/a.yaml");
  EXPECT_EQ(lock_spec_path(root + "/proj/kernelgen.lock", root + "/other/b.yaml"), "../other/b.yaml");
  EXPECT_EQ(lock_spec_path(root + "/proj/kernelgen.lock", root + "/proj/missing/dir/c.yaml"), "missing/dir/c.yaml");
  // A directory reached through a symbolic link is the same directory.
  std::filesystem::create_directory_symlink(root + "/proj", root + "/link");
  EXPECT_EQ(lock_spec_path(root + "/link/kernelgen.lock", root + "/proj/specs/a.yaml"), "specs/a.yaml");
  EXPECT_EQ(lock_spec_path(root + "/proj/kernelgen.lock", root + "/link/specs/a.yaml"), "specs/a.yaml");
  // Relative paths start at the working directory.
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(root + "/proj");
  EXPECT_EQ(lock_spec_path("kernelgen.lock", "specs/a.yaml"), "specs/a.yaml");
  EXPECT_EQ(lock_spec_path("specs/../kernelgen.lock", "./specs/a.yaml"), "specs/a.yaml");
  std::filesystem::current_path(cwd);
}

TEST(Lockfile, ChecksWhatABuildResolved) {
  testing::TempDir dir("kg-lock-test");
  const std::string root = std::filesystem::canonical(dir.path()).string();
  const std::string lockfile = root + "/kernelgen.lock";
  Lockfile lock({entry("specs/causal.yaml", "causal"), entry("specs/alibi.yaml", "alibi", kKey2, kDigest2)});
  Resolved r{root + "/specs/causal.yaml", "causal", "sm_90a", kKey1, kDigest1};
  EXPECT_TRUE(check_locked(lock, lockfile, r));

  Resolved changed = r;
  changed.key = kKey2;
  auto key = check_locked(lock, lockfile, changed);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().message,
            "causal resolves to key " + kKey2 + ", but " + lockfile + " locks it at key " + kKey1 +
                ": the spec or KernelGen changed (the key covers the spec's meaning, the target architecture and the "
                "generator and verifier versions). If the change is intended, accept it with `kernelgen lock --update "
                "--lockfile " + lockfile + " " + r.spec_file + "`");

  Resolved other_kernel = r;
  other_kernel.kernel = kDigest2;
  auto kernel = check_locked(lock, lockfile, other_kernel);
  ASSERT_FALSE(kernel);
  EXPECT_NE(kernel.error().message.find("causal (key " + kKey1 + ") is locked to kernel " + kDigest1 +
                                        " in " + lockfile + ", but the cache holds kernel " + kDigest2 +
                                        " for that key: the cache holds a different kernel for the same key"),
            std::string::npos)
      << kernel.error().message;
  EXPECT_NE(kernel.error().message.find("`kernelgen lock --update --lockfile "), std::string::npos);

  Resolved unlocked{root + "/specs/new.yaml", "fresh", "sm_90a", kKey1, kDigest1};
  auto none = check_locked(lock, lockfile, unlocked);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "fresh is not locked in " + lockfile +
                                      " (no entry for spec 'specs/new.yaml', nor one for fresh on sm_90a): lock it "
                                      "with `kernelgen lock --lockfile " + lockfile + " " + unlocked.spec_file + "`");

  // Found by name and arch when the path differs (the spec moved), and the arch named when not default.
  Resolved moved{root + "/elsewhere/alibi.yaml", "alibi", "sm_90a", kKey2, kDigest2};
  EXPECT_TRUE(check_locked(lock, lockfile, moved));
  Resolved moved_changed = moved;
  moved_changed.key = kKey1;
  auto m = check_locked(lock, lockfile, moved_changed);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("(its entry for 'specs/alibi.yaml')"), std::string::npos);
  Resolved other_arch = r;
  other_arch.arch = "sm_80";
  other_arch.key = kKey2;
  auto a = check_locked(lock, lockfile, other_arch);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find(" for sm_90a (this build is for sm_80)"), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find("--arch sm_80 "), std::string::npos);
}

TEST(Lockfile, LockCommandQuotesWhatTheShellWouldSplit) {
  EXPECT_EQ(lock_command("/p/kernelgen.lock", "specs/a.yaml", "sm_90a", false),
            "kernelgen lock --lockfile /p/kernelgen.lock specs/a.yaml");
  EXPECT_EQ(lock_command("/my proj/kernelgen.lock", "it's.yaml", "sm_80", true),
            "kernelgen lock --update --lockfile '/my proj/kernelgen.lock' --arch sm_80 'it'\\''s.yaml'");
}

}  // namespace
}  // namespace kg::lock

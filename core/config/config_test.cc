#include "config/config.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace kg::config {
namespace {

class ConfigDir {
 public:
  std::string write(const std::string& text) const {
    const std::string file = m_dir.path() + "/kernelgen.conf";
    std::ofstream(file) << text;
    return file;
  }
  const std::string& path() const { return m_dir.path(); }

 private:
  testing::TempDir m_dir{"kg-config-test"};
};

TEST(Config, DefaultsComeFromTheEnvironmentsDirectories) {
  const Environment env = {{"HOME", "/home/u"}, {"KERNELGEN_CONFIG", "/nonexistent/kernelgen.conf"}};
  auto c = Config::load(env);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->cache_dir(), "/home/u/.cache/kernelgen");
  EXPECT_EQ(c->value("cache_dir").origin, Origin::Default);
  EXPECT_EQ(c->text("log"), "warn");
  EXPECT_EQ(c->milliseconds("idle_timeout"), 600'000);
  EXPECT_EQ(c->milliseconds("daemon_silence_timeout"), 60'000);
  EXPECT_FALSE(c->flag("no_daemon"));
  EXPECT_FALSE(c->config_file_found());

  auto xdg = Config::load({{"HOME", "/home/u"}, {"XDG_CACHE_HOME", "/xdg"}, {"XDG_RUNTIME_DIR", "/run/user/7"},
                           {"KERNELGEN_CONFIG", "/nonexistent"}});
  ASSERT_TRUE(xdg);
  EXPECT_EQ(xdg->cache_dir(), "/xdg/kernelgen");
  EXPECT_EQ(xdg->runtime_dir(), "/run/user/7/kernelgen");
  // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
  auto rel = Config::load({{"HOME", "/home/u"}, {"XDG_CACHE_HOME", "rel"}, {"KERNELGEN_CONFIG", "/nonexistent"}});
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->cache_dir(), "/home/u/.cache/kernelgen");
}

TEST(Config, CommandLineBeatsEnvironmentBeatsFileBeatsDefault) {
  ConfigDir dir;
  const std::string file = dir.write("# team settings\n\ncache_dir = /from/file\nlog=info\n  jobs = 3  \n");
  Environment env = {{"HOME", "/h"}, {"KERNELGEN_CONFIG", file}};
  auto f = Config::load(env);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_TRUE(f->config_file_found());
  EXPECT_EQ(f->cache_dir(), "/from/file");
  EXPECT_EQ(f->value("cache_dir").origin, Origin::ConfigFile);
  EXPECT_EQ(f->value("cache_dir").source, file + ":3");
  EXPECT_EQ(f->number("jobs"), 3);

  env["KERNELGEN_CACHE_DIR"] = "/from/env";
  auto e = Config::load(env);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cache_dir(), "/from/env");
  EXPECT_EQ(e->value("cache_dir").origin, Origin::Environment);
  EXPECT_EQ(e->value("cache_dir").source, "KERNELGEN_CACHE_DIR");
  EXPECT_EQ(e->text("log"), "info");  // still from the file

  auto c = Config::load(env, {{"cache_dir", "/from/flag"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->cache_dir(), "/from/flag");
  EXPECT_EQ(c->value("cache_dir").origin, Origin::CommandLine);

  // An empty path variable means unset (KERNELGEN_CACHE_DIR= falls back).
  env["KERNELGEN_CACHE_DIR"] = "";
  auto empty = Config::load(env);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->cache_dir(), "/from/file");
}

TEST(Config, XdgConfigHomeLocatesTheFile) {
  ConfigDir dir;
  std::filesystem::create_directories(dir.path() + "/kernelgen");
  std::ofstream(dir.path() + "/kernelgen/kernelgen.conf") << "no_daemon = yes\n";
  auto c = Config::load({{"HOME", "/h"}, {"XDG_CONFIG_HOME", dir.path()}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->config_file(), dir.path() + "/kernelgen/kernelgen.conf");
  EXPECT_TRUE(c->flag("no_daemon"));
}

TEST(Config, BadInputIsAnErrorThatSaysWhere) {
  ConfigDir dir;
  struct Case {
    std::string text;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"cache_dri = /x\n", ":1: unknown setting 'cache_dri' (did you mean 'cache_dir'?)"},
      {"\n\njust words\n", ":3: expected 'key = value', found 'just words'"},
      {"idle_timeout = soon\n", ":1: expected a non-negative number of seconds for idle_timeout, found 'soon'"},
      {"jobs = -1\n", ":1: expected a non-negative whole number for jobs"},
      {"no_daemon = maybe\n", ":1: expected true or false for no_daemon"},
      {"log = loud\n", ":1: expected one of error, warn, info, debug for log, found 'loud'"},
      {"log = \x1b[31mred\n", "found '\\x1b[31mred'"},
  };
  for (const Case& k : cases) {
    const std::string file = dir.write(k.text);
    auto c = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", file}});
    ASSERT_FALSE(c) << k.text;
    EXPECT_EQ(c.error().message.rfind(file + ":", 0), 0u) << c.error().message;
    EXPECT_NE(c.error().message.find(k.want), std::string::npos) << c.error().message;
  }
  auto env = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}, {"KERNELGEN_JOBS", "many"}});
  ASSERT_FALSE(env);
  EXPECT_EQ(env.error().message.rfind("KERNELGEN_JOBS: expected a non-negative whole number for jobs", 0), 0u)
      << env.error().message;
  auto flag = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}}, {{"idle_timeout", "x"}});
  ASSERT_FALSE(flag);
  EXPECT_EQ(flag.error().message.rfind("--idle-timeout: ", 0), 0u) << flag.error().message;
}

TEST(Config, ShowNamesEveryValuesOrigin) {
  auto c = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}, {"KERNELGEN_LOG", "debug"}},
                        {{"cache_dir", "/c"}});
  ASSERT_TRUE(c);
  const std::string s = c->show();
  EXPECT_NE(s.find("config file: /nonexistent (not found)\n"), std::string::npos) << s;
  EXPECT_NE(s.find("(command line: --cache-dir) cache_dir = /c\n"), std::string::npos) << s;
  EXPECT_NE(s.find("(environment: KERNELGEN_LOG) log = debug\n"), std::string::npos) << s;
  EXPECT_NE(s.find("(default) idle_timeout = 600\n"), std::string::npos) << s;
  for (const SettingInfo& info : settings()) {
    EXPECT_NE(s.find(std::string(") ") + info.key + " = "), std::string::npos) << info.key;
  }
  EXPECT_NE(c->show_json().find("\"origin\": \"environment\""), std::string::npos);
}

TEST(Config, DurationsTakeUnits) {
  EXPECT_EQ(parse_duration("900"), 900.0);
  EXPECT_EQ(parse_duration("90s"), 90.0);
  EXPECT_EQ(parse_duration("15m"), 900.0);
  EXPECT_EQ(parse_duration("15min"), 900.0);
  EXPECT_EQ(parse_duration("1.5h"), 5400.0);
  EXPECT_EQ(parse_duration(" 0 "), 0.0);
  for (const char* bad : {"", "m", "-5m", "15 parsecs", "1e9h", "15mm", "0x10", "1.2.3s"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
  auto c = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}, {"KERNELGEN_LLM_BUDGET", "2m"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->real("llm_budget"), 120.0);
  EXPECT_EQ(c->real("llm_temperature"), 0.6);
  auto bad = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}, {"KERNELGEN_LLM_BUDGET", "soon"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("KERNELGEN_LLM_BUDGET: expected a duration"), std::string::npos)
      << bad.error().message;
}

TEST(Config, SecretsAreNeverShown) {
  const std::string key = "sk-kernelgen-test-0123456789abcdef";
  auto c = Config::load({{"HOME", "/h"}, {"KERNELGEN_CONFIG", "/nonexistent"}, {"KERNELGEN_LLM_API_KEY", key}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->text("llm_api_key"), key);
  EXPECT_EQ(c->show().find("sk-kernelgen"), std::string::npos) << c->show();
  EXPECT_EQ(c->show_json().find("sk-kernelgen"), std::string::npos);
  EXPECT_NE(c->show().find("llm_api_key = (set, hidden)"), std::string::npos) << c->show();
}

TEST(Config, SizesParse) {
  EXPECT_EQ(parse_size("5G"), 5ull << 30);
  EXPECT_EQ(parse_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_size("100k"), 100ull << 10);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_EQ(parse_size(" 3 GB "), 3ull << 30);
  for (const char* bad : {"", "G", "-1G", "5X", "1.5G", "99999999999999999999", "20000000000T"}) {
    EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
  }
}

TEST(Config, EnvironmentFromEnviron) {
  const char* envp[] = {"A=1", "B=x=y", "NOEQUALS", "C=", nullptr};
  const Environment env = environment_from(envp);
  EXPECT_EQ(env.size(), 3u);
  EXPECT_EQ(env.at("B"), "x=y");
  EXPECT_EQ(env.at("C"), "");
  EXPECT_EQ(lookup(env, "NOEQUALS"), std::nullopt);
  EXPECT_EQ(env_name("cache_dir"), "KERNELGEN_CACHE_DIR");
}

}  // namespace
}  // namespace kg::config

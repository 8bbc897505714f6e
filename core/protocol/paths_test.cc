#include "protocol/paths.h"

#include <gtest/gtest.h>

#include "temp_dir.h"
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "util/hash.h"

namespace kg::protocol {
namespace {

using TempDir = ::kg::testing::TempDir;

TEST(DaemonPaths, ConfigIdDependsOnTheCacheDirOnly) {
  DaemonConfig a{"/home/u/.cache/kernelgen"};
  DaemonConfig b{"/tmp/other-cache"};
  EXPECT_EQ(config_id(a), config_id(a));
  EXPECT_NE(config_id(a), config_id(b));
  EXPECT_EQ(config_id(a).size(), 16u);
  EXPECT_TRUE(is_digest(config_id(a) + config_id(b)));  // lowercase hex
}

TEST(DaemonPaths, AbsolutePathIsNormalised) {
  EXPECT_EQ(absolute_path("/a/b/../c/"), "/a/c");
  EXPECT_EQ(absolute_path("/a/./b//c"), "/a/b/c");
  EXPECT_EQ(absolute_path("/"), "/");
  const std::string cwd = std::filesystem::current_path().string();
  EXPECT_EQ(absolute_path("x/y"), cwd + "/x/y");
}

TEST(DaemonPaths, PathsAndTheirLimit) {
  auto p = daemon_paths("/run/user/1000/kernelgen", "0123456789abcdef");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->socket, "/run/user/1000/kernelgen/kgd-0123456789abcdef.sock");
  EXPECT_EQ(p->lock, "/run/user/1000/kernelgen/kgd-0123456789abcdef.lock");
  EXPECT_EQ(p->spawn_lock, "/run/user/1000/kernelgen/kgd-0123456789abcdef.spawn");
  EXPECT_EQ(p->log, "/run/user/1000/kernelgen/kgd-0123456789abcdef.log");
  auto long_dir = daemon_paths("/" + std::string(100, 'd'), "0123456789abcdef");
  ASSERT_FALSE(long_dir);
  EXPECT_NE(long_dir.error().message.find("XDG_RUNTIME_DIR"), std::string::npos);
}

TEST(DaemonPaths, PrivateDirIsCreatedAndChecked) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/kernelgen";
  ASSERT_TRUE(ensure_private_dir(dir));
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(ensure_private_dir(dir));  // again: fine

  ::chmod(dir.c_str(), 0755);
  auto open = ensure_private_dir(dir);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("0755"), std::string::npos) << open.error().message;

  const std::string link = tmp.path() + "/link";
  ::chmod(dir.c_str(), 0700);
  ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
  auto symlinked = ensure_private_dir(link);
  ASSERT_FALSE(symlinked);
  EXPECT_NE(symlinked.error().message.find("symbolic link"), std::string::npos);

  const std::string file = tmp.path() + "/file";
  std::ofstream(file) << "x";
  auto not_dir = ensure_private_dir(file);
  ASSERT_FALSE(not_dir);
  EXPECT_NE(not_dir.error().message.find("not a directory"), std::string::npos);

  auto below_file = ensure_private_dir(file + "/kernelgen");
  ASSERT_FALSE(below_file);
  EXPECT_NE(below_file.error().message.find("cannot create"), std::string::npos);
}


}  // namespace
}  // namespace kg::protocol

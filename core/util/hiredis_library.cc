#include "util/hiredis_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace kg::hiredis {

namespace {

#define KG_HIREDIS_TEXT2(x) #x
#define KG_HIREDIS_TEXT(x) KG_HIREDIS_TEXT2(x)
constexpr const char* k_soname = "libhiredis.so." KG_HIREDIS_TEXT(HIREDIS_MAJOR) "." KG_HIREDIS_TEXT(HIREDIS_MINOR);
constexpr const char* k_needs = "the redis remote needs libhiredis (Debian: libhiredis0.14): ";

Api g_api;
bool g_loaded = false;
Failure g_failure;

template <typename F>
bool resolve(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  return out != nullptr;
}

void load_once() {
  auto api = load_library(k_soname);
  if (!api) {
    g_failure = api.error();
    return;
  }
  g_api = *api;
  g_loaded = true;
}

}  // namespace

std::string soname() { return k_soname; }

Expected<Api, Failure> load_library(const std::string& library) {
  void* h = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = ::dlerror();
    return fail(std::string(k_needs) + "cannot load " + library + ": " + (why != nullptr ? why : "unknown error"));
  }
  Api a{};
  const char* missing = nullptr;
  if (!resolve(h, "redisConnectWithTimeout", a.connect_with_timeout)) {
    missing = "redisConnectWithTimeout";
  } else if (!resolve(h, "redisSetTimeout", a.set_timeout)) {
    missing = "redisSetTimeout";
  } else if (!resolve(h, "redisCommandArgv", a.command_argv)) {
    missing = "redisCommandArgv";
  } else if (!resolve(h, "redisFree", a.free_context)) {
    missing = "redisFree";
  } else if (!resolve(h, "freeReplyObject", a.free_reply)) {
    missing = "freeReplyObject";
  }
  if (missing != nullptr) {
    ::dlclose(h);
    return fail(std::string(k_needs) + library + " lacks " + missing);
  }
  return a;
}

Expected<void, Failure> load() {
  static std::once_flag once;
  std::call_once(once, load_once);
  if (!g_loaded) {
    return unexpected(g_failure);
  }
  return {};
}

const Api& lib() {
  if (!g_loaded) {
    std::fprintf(stderr, "kernelgen: internal error: libhiredis used before kg::hiredis::load()\n");
    std::abort();
  }
  return g_api;
}

}  // namespace kg::hiredis

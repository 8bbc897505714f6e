#include "util/curl_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace kg::curl {

namespace {

Api g_api;
bool g_loaded = false;
std::string g_error;

template <typename F>
bool resolve(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  if (out == nullptr) {
    g_error = std::string("libcurl.so.4 lacks ") + name;
    return false;
  }
  return true;
}

void load_once() {
  void* h = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = ::dlerror();
    g_error = std::string("cannot load libcurl.so.4 (install libcurl4): ") + (why != nullptr ? why : "unknown error");
    return;
  }
  Api a{};
  const bool ok = resolve(h, "curl_global_init", a.global_init) && resolve(h, "curl_easy_init", a.easy_init) &&
                  resolve(h, "curl_easy_cleanup", a.easy_cleanup) && resolve(h, "curl_easy_reset", a.easy_reset) &&
                  resolve(h, "curl_easy_setopt", a.easy_setopt) && resolve(h, "curl_easy_getinfo", a.easy_getinfo) &&
                  resolve(h, "curl_easy_perform", a.easy_perform) &&
                  resolve(h, "curl_easy_strerror", a.easy_strerror) && resolve(h, "curl_multi_init", a.multi_init) &&
                  resolve(h, "curl_multi_cleanup", a.multi_cleanup) &&
                  resolve(h, "curl_multi_add_handle", a.multi_add_handle) &&
                  resolve(h, "curl_multi_remove_handle", a.multi_remove_handle) &&
                  resolve(h, "curl_multi_perform", a.multi_perform) && resolve(h, "curl_multi_poll", a.multi_poll) &&
                  resolve(h, "curl_multi_info_read", a.multi_info_read) &&
                  resolve(h, "curl_slist_append", a.slist_append) &&
                  resolve(h, "curl_slist_free_all", a.slist_free_all);
  if (!ok) {
    return;
  }
  if (const CURLcode rc = a.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
    g_error = "curl_global_init failed: " + std::string(a.easy_strerror(rc));
    return;
  }
  g_api = a;
  g_loaded = true;
}

}  // namespace

Expected<void, Failure> load() {
  static std::once_flag once;
  std::call_once(once, load_once);
  if (!g_loaded) {
    return fail(g_error);
  }
  return {};
}

const Api& lib() {
  if (!g_loaded) {
    std::fprintf(stderr, "kernelgen: internal error: libcurl used before kg::curl::load()\n");
    std::abort();
  }
  return g_api;
}

}  // namespace kg::curl

// libcurl, loaded when first needed (dlopen of libcurl.so.4) instead of linked: libcurl pulls in
// some thirty shared libraries (TLS, Kerberos, LDAP, ...), which cost every kernelgen process about
// 15 ms at start-up on a 2-core machine (measured: a cache hit went from 2.3 to 17.5 ms), while
// only the remote tier and the LLM endpoint use it. A build step that serves a hit never loads it.
#pragma once

#include <curl/curl.h>

#include "util/expected.h"

namespace kg::curl {

// The functions kernelgen calls, as loaded.
struct Api {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL* handle);
  void (*easy_reset)(CURL* handle);
  CURLcode (*easy_setopt)(CURL* handle, CURLoption option, ...);
  CURLcode (*easy_getinfo)(CURL* handle, CURLINFO info, ...);
  CURLcode (*easy_perform)(CURL* handle);
  const char* (*easy_strerror)(CURLcode code);
  CURLM* (*multi_init)();
  CURLMcode (*multi_cleanup)(CURLM* multi);
  CURLMcode (*multi_add_handle)(CURLM* multi, CURL* handle);
  CURLMcode (*multi_remove_handle)(CURLM* multi, CURL* handle);
  CURLMcode (*multi_perform)(CURLM* multi, int* running);
  CURLMcode (*multi_poll)(CURLM* multi, struct curl_waitfd extra[], unsigned int extra_nfds, int timeout_ms,
                          int* numfds);
  CURLMsg* (*multi_info_read)(CURLM* multi, int* queued);
  struct curl_slist* (*slist_append)(struct curl_slist* list, const char* text);
  void (*slist_free_all)(struct curl_slist* list);
};

// Loads libcurl once (and runs curl_global_init). Thread-safe. Errors: the library or one of the
// functions is missing ("cannot load libcurl.so.4 (install libcurl4): ...").
Expected<void, Failure> load();

// The loaded functions; load() must have succeeded first (else: abort, a programming error).
const Api& lib();

}  // namespace kg::curl

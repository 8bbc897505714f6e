// libhiredis, loaded when first needed (dlopen) instead of linked, as libcurl is
// (util/curl_library.h): only the Redis tier uses it, so a build step that serves a hit, or a
// machine whose remote is HTTP, never loads it, and a machine without the library still runs
// kernelgen (the Redis tier then fails like a remote that is down).
//
// The struct layouts (redisContext, redisReply) come from the header this is compiled against, so
// only the library of that header's soname is loaded (Debian 12: libhiredis.so.0.14 from the
// package libhiredis0.14; the -dev package is a build dependency for the header). Another major
// version's library could lay its structs out differently, and is never tried.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <string>

#include "util/expected.h"

namespace kg::hiredis {

// The functions the Redis tier calls, as loaded.
struct Api {
  redisContext* (*connect_with_timeout)(const char* ip, int port, const struct timeval tv);
  int (*set_timeout)(redisContext* c, const struct timeval tv);
  void* (*command_argv)(redisContext* c, int argc, const char** argv, const size_t* argvlen);
  void (*free_context)(redisContext* c);
  void (*free_reply)(void* reply);
};

// The soname matching the header: "libhiredis.so.<HIREDIS_MAJOR>.<HIREDIS_MINOR>".
std::string soname();

// Opens `library` (a file name dlopen searches for, or a path) and resolves every function of Api,
// without caching anything: load() uses it, and tests give it a name that does not exist.
// Errors (Error kind): "the redis remote needs libhiredis (Debian: libhiredis0.14): cannot load
// <library>: <dlerror>", or "... <library> lacks <function>". The handle is never closed (the
// functions stay valid for the rest of the process).
Expected<Api, Failure> load_library(const std::string& library);

// Loads soname() once per process; later calls return the first outcome. Thread-safe.
Expected<void, Failure> load();

// The loaded functions; load() must have succeeded first (else: abort, a programming error).
const Api& lib();

}  // namespace kg::hiredis

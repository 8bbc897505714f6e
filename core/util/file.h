// Whole-file reads and crash-safe writes.
#pragma once

#include <string>
#include <string_view>

#include "util/expected.h"

namespace kg {

// "<what> <path>: <strerror(errno)>", for failures of system calls on `path`. Reads errno, so call
// it before anything else can change it.
std::string os_error(const std::string& what, const std::string& path);

// Reads the whole file. Failure message names the path and the OS error.
Expected<std::string, Failure> read_file(const std::string& path);

// Writes `content` to `path` atomically: a temporary file in the same directory, fsync, rename.
// Readers see the old or the new content, never a mix; a crash leaves at most a stray temp file.
Expected<void, Failure> write_file_atomic(const std::string& path, std::string_view content);

// Like write_file_atomic, but leaves the file (and its mtime) alone when it already holds
// `content`, so build tools do not rebuild what did not change. Returns true when it wrote.
Expected<bool, Failure> write_file_if_changed(const std::string& path, std::string_view content);

// mkdir -p; `mode` applies to directories it creates.
Expected<void, Failure> make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace kg

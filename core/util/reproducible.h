// Reproducible object files from nvcc.
//
// nvcc compiles a .cu through temporary files named tmpxft_<pid:8 hex>_<counter:8 hex>-<n>_<name>...,
// and the host compiler records the name of the file it compiled: the object's STT_FILE symbol
// (and, in -g builds, the debug info's compilation-unit name) carries nvcc's process id. The same
// source compiled twice, in one directory or two clones, so gives object files that differ in those
// 17 hex digits and nowhere else (nvcc 12 and 13; checked with cmp(1) on sm_90a and sm_80 builds).
// Rewriting the digits to zeros makes them identical; every name keeps its length, so no offset in
// the file moves and nothing else changes.
//
// `kernelgen launch -- <compiler> <args...>` (wrapper/cmd_launch.cc) is the compiler launcher the
// CMake module sets on targets with generated kernels; it runs the compiler and then this on the
// object it wrote.
#pragma once

#include <cstddef>
#include <string>

#include "util/expected.h"

namespace kg {

// Replaces the pid and counter digits of every `tmpxft_XXXXXXXX_XXXXXXXX` (X a lowercase or
// uppercase hex digit) in `bytes` with '0'. Returns how many names it rewrote (those already all
// zeros are not counted). Any byte string is valid input.
size_t zero_nvcc_temp_names(std::string& bytes);

// zero_nvcc_temp_names on the file at `path`, rewritten atomically (a temporary file renamed over
// it, same permissions) only when something changed. Returns the count.
// Errors: the file cannot be read, or the rewrite fails (message names the path).
Expected<size_t, Failure> zero_nvcc_temp_names_in_file(const std::string& path);

}  // namespace kg

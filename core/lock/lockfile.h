// The lockfile `kernelgen.lock` (docs/design.md §7): which kernel each spec of a project resolved
// to, so that a build that would emit anything else fails.
//
//   {
//     "about": "kernelgen lockfile: the kernel each spec resolves to. Written by `kernelgen lock`; ...",
//     "entries": [
//       {
//         "arch": "sm_90a",                               resolved target or set, "sm_80,sm_90a" (spec::resolve_arch)
//         "generator": "tmpl-16",                          what made the kernel (AcRecord::generator)
//         "kernel": "<32 hex>",                           XXH3-128 of <name>.cu (AcRecord::source_digest)
//         "key": "<32 hex>",                              the cache key (spec::spec_key)
//         "name": "causal",                               the spec's name
//         "spec": "specs/causal.yaml",                    relative to the lockfile's directory
//         "verification": "unverified"                    or "verified"
//       }
//     ],
//     "format": 1
//   }
//
// Written sorted and stable, so that it diffs well under version control: 2-space indentation,
// keys sorted, entries sorted by "spec" (byte order), one entry per spec, a trailing newline; the
// same entries always give the same bytes. "about" is informational (any string; optional on
// read). Every other field is required and checked; unknown fields are refused (a new field
// means a new format version).
//
// Reading treats the file as hostile: at most kMaxLockfileBytes and kMaxLockEntries, nesting and
// value counts bounded before the JSON parser runs, every field's type and form checked, no spec
// locked twice. Errors say "<file>:<line>:<col>: " where there is a position, what was expected
// and what was found.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.h"

namespace kg::lock {

inline constexpr int kLockfileFormatVersion = 1;
inline constexpr const char* kDefaultLockfileName = "kernelgen.lock";
// Largest lockfile read (about 400 bytes per entry: room for well over kMaxLockEntries).
inline constexpr size_t kMaxLockfileBytes = size_t{8} << 20;
// Most entries in one lockfile.
inline constexpr size_t kMaxLockEntries = 10000;
// Longest "spec" path and "generator" text accepted.
inline constexpr size_t kMaxLockPathBytes = 4096;
inline constexpr size_t kMaxLockGeneratorBytes = 256;

struct LockEntry {
  std::string spec;          // path relative to the lockfile's directory, normal form ("a/b.yaml", "../c.yaml")
  std::string name;          // spec name (an identifier)
  std::string arch;          // resolved, "sm_90a"
  std::string key;           // 32 hex
  std::string kernel;        // 32 hex: XXH3-128 of the kernel source
  std::string generator;     // non-empty, printable
  std::string verification;  // "unverified" | "verified"

  bool operator==(const LockEntry&) const = default;
};

class Lockfile {
 public:
  Lockfile() = default;
  // Takes `entries` (need not be sorted; sorted here). Specs must be unique: check with
  // validate_entries() first (a duplicate makes find() return either).
  explicit Lockfile(std::vector<LockEntry> entries);

  // Sorted by spec.
  const std::vector<LockEntry>& entries() const { return m_entries; }

  // The entry whose spec is `spec` (compared byte for byte with the stored path), or nullptr.
  // The pointer is valid until this Lockfile changes or goes.
  const LockEntry* find(std::string_view spec) const;

  // The one entry with this name and arch, or nullptr when none or several have them.
  const LockEntry* find_name_arch(std::string_view name, std::string_view arch) const;

  // Adds `entry`, replacing the entry for the same spec if there is one.
  void put(LockEntry entry);

 private:
  std::vector<LockEntry> m_entries;
};

// Parses lockfile text. `path` only names the file in messages. Errors (Kind::Error), each
// starting "<path>:<line>:<col>: " (or "<path>: " without a position):
//   longer than kMaxLockfileBytes; nested deeper or holding more values than a lockfile can;
//   invalid JSON (the parser's complaint, at its position); the top level is not an object;
//   "format" missing or not an integer; a format other than kLockfileFormatVersion ("lockfile
//   format 2 is not supported ..."); "entries" missing or not an array; more than
//   kMaxLockEntries entries; an entry that is not an object, lacks a field, has an unknown or
//   repeated field, or a field of the wrong type or form (spec: a relative path in normal form;
//   name: an identifier; arch: resolved; key, kernel: 32 lowercase hex digits; generator:
//   printable; verification: unverified or verified); two entries for one spec.
Expected<Lockfile, Failure> parse_lockfile(std::string_view text, const std::string& path);

// Reads and parses the lockfile at `path`, reading at most kMaxLockfileBytes + 1 bytes.
// Errors: NotFound when the file does not exist; Error when it is not a regular file, cannot be
// read, or does not parse (as parse_lockfile).
Expected<Lockfile, Failure> read_lockfile(const std::string& path);

// The lockfile text for `lock`: sorted, stable, ending in a newline.
// Errors (Kind::Error): an entry fails validate_entries, or a string is not valid UTF-8.
Expected<std::string, Failure> lockfile_text(const Lockfile& lock);

// Writes `lock` to `path` atomically (a temporary file, then rename), and only when the content
// changed, so an unchanged lockfile keeps its time stamp. Returns true when it wrote.
// Errors: as lockfile_text; the file cannot be written (the message has the OS error).
Expected<bool, Failure> write_lockfile(const std::string& path, const Lockfile& lock);

// Checks every entry's fields as parse_lockfile does, and that no spec appears twice. Errors
// name the entry by its spec and say what was expected.
Expected<void, Failure> validate_entries(const std::vector<LockEntry>& entries);

// The "spec" of `spec_file` in the lockfile at `lockfile_path`: the spec's path relative to the
// lockfile's directory, both made absolute (from the working directory) with symbolic links of
// existing parents resolved, in normal form with '/' separators. A spec outside the directory
// gets "../" steps.
std::string lock_spec_path(const std::string& lockfile_path, const std::string& spec_file);

// What a build resolved a spec to, for check_locked().
struct Resolved {
  std::string spec_file;  // as given on the command line (for messages and lock_spec_path)
  std::string name;
  std::string arch;       // resolved
  std::string key;
  std::string kernel;     // source digest
};

// Checks `resolved` against `lock` (read from `lockfile_path`): the entry is the one for the
// spec's path (lock_spec_path), else the one entry with its name and arch. Errors (Kind::Error),
// each saying what differs and how to fix it (callers put "<spec file>: " in front):
//   "<name> is not locked in <lockfile> ... lock it with `kernelgen lock ...`"
//   "<name> resolves to key K, but <lockfile> locks it at key L ...: the spec or KernelGen
//    changed ... accept it with `kernelgen lock --update ...`"
//   "<name> (key K) is locked to kernel D in <lockfile>, but the cache holds kernel E for that
//    key: the cache holds a different kernel for the same key ... `kernelgen lock --update ...`"
Expected<void, Failure> check_locked(const Lockfile& lock, const std::string& lockfile_path, const Resolved& resolved);

// The command that (re)locks a spec: "kernelgen lock [--update] --lockfile <lockfile> [--arch
// <arch>] <spec>" (--arch only when it is not the default, sm_90a). For messages.
std::string lock_command(const std::string& lockfile_path, const std::string& spec_file, const std::string& arch,
                         bool update);

}  // namespace kg::lock

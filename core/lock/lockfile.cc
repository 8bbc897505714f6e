#include "lock/lockfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "spec/key.h"
#include "spec/names.h"
#include "util/file.h"
#include "util/hash.h"
#include "util/text.h"
#include "version.h"

namespace kg::lock {

namespace {

using nlohmann::json;

// The lockfile's nesting is 3 (object, entries array, entry object); anything deeper is not one.
constexpr int kMaxDepth = 8;
// Keys and values a lockfile of kMaxLockEntries holds (15 per entry and a few more), with room
// to spare.
constexpr size_t kMaxTokens = kMaxLockEntries * 20 + 64;

constexpr const char* kAbout =
    "kernelgen lockfile: the kernel each spec resolves to. Written by `kernelgen lock`; a build with "
    "LOCKFILE fails when it would emit anything else. Accept a change with `kernelgen lock --update SPEC`.";

const std::vector<std::string> kEntryFields = {"arch", "generator", "kernel", "key", "name", "spec", "verification"};

// "<line>:<col>" (both from 1; columns count bytes) of byte `offset` of `text`.
std::string position(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return std::to_string(line) + ":" + std::to_string(offset - line_start + 1);
}

// The first object key that repeats in a JSON text and, when asked for, where each value starts,
// by its path ("" the root, "/entries/2/key"). One pass over the raw bytes before the JSON parser
// sees them, which also bounds nesting and the number of keys and values (a parser given
// "[[[[..." or "1,1,1,..." would recurse deeply or allocate without limit). Positions are only
// trusted once the parser accepted the text. They are only needed for an error message: the
// pass that reads a good lockfile does not record them (a map of every value's path would cost
// more than the JSON parser itself on a lockfile of 10000 entries).
struct Scan {
  std::map<std::string, size_t> where;  // with_positions only
  std::optional<size_t> duplicate;  // offset of a repeated key's string
  size_t duplicate_first = 0;       // offset of its first occurrence
  std::string duplicate_key;
};

struct Frame {
  bool object = false;
  std::string path;
  size_t index = 0;             // arrays: the element being read
  std::string key;              // objects: the key of the value being read
  bool expect_key = true;       // objects
  std::map<std::string, size_t> keys;  // objects: key → offset
};

std::string decode_key(std::string_view raw) {  // raw: the string with its quotes
  if (raw.find('\\') == std::string_view::npos) {
    return std::string(raw.substr(1, raw.size() >= 2 ? raw.size() - 2 : 0));
  }
  try {
    return json::parse(raw).get<std::string>();
  } catch (const json::exception&) {
    return std::string(raw);  // the parser reports it
  }
}

std::string escape_segment(const std::string& key) {
  std::string out;
  for (char c : key) {
    out += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
  }
  return out;
}

Expected<Scan, Failure> scan(std::string_view text, const std::string& path, bool with_positions) {
  Scan s;
  std::vector<Frame> stack;
  size_t tokens = 0;  // keys and values
  auto count = [&](size_t offset) -> Expected<void, Failure> {
    if (++tokens > kMaxTokens) {
      return fail(path + ":" + position(text, offset) + ": expected a lockfile of at most " +
                  std::to_string(kMaxLockEntries) + " entries, found more values than that many can hold");
    }
    return {};
  };
  // The path of the value about to be read.
  auto child_path = [&stack, with_positions]() -> std::string {
    if (stack.empty() || !with_positions) {
      return "";
    }
    const Frame& f = stack.back();
    return f.path + "/" + (f.object ? escape_segment(f.key) : std::to_string(f.index));
  };
  auto value_at = [&](size_t offset) -> Expected<void, Failure> {
    KG_TRY(count(offset));
    if (with_positions) {
      s.where.emplace(child_path(), offset);
    }
    return {};
  };
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c == '{' || c == '[') {
      KG_TRY(value_at(i));
      if (stack.size() >= static_cast<size_t>(kMaxDepth)) {
        return fail(path + ":" + position(text, i) + ": expected a lockfile nested at most " +
                    std::to_string(kMaxDepth) + " deep, found deeper nesting");
      }
      Frame f;
      f.object = c == '{';
      f.path = child_path();
      stack.push_back(std::move(f));
      ++i;
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) {
        stack.pop_back();
      }
      ++i;
    } else if (c == ',') {
      if (!stack.empty()) {
        Frame& f = stack.back();
        if (f.object) {
          f.expect_key = true;
        } else {
          ++f.index;
        }
      }
      ++i;
    } else if (c == ':') {
      if (!stack.empty()) {
        stack.back().expect_key = false;
      }
      ++i;
    } else if (c == '"') {
      size_t j = i + 1;
      while (j < text.size() && text[j] != '"') {
        j += text[j] == '\\' ? 2 : 1;
      }
      j = std::min(j + 1, text.size());
      if (!stack.empty() && stack.back().object && stack.back().expect_key) {
        KG_TRY(count(i));
        Frame& f = stack.back();
        f.key = decode_key(text.substr(i, j - i));
        auto [it, fresh] = f.keys.emplace(f.key, i);
        if (!fresh && !s.duplicate) {
          s.duplicate = i;
          s.duplicate_first = it->second;
          s.duplicate_key = f.key;
        }
      } else {
        KG_TRY(value_at(i));
      }
      i = j;
    } else {
      KG_TRY(value_at(i));
      while (i < text.size() && std::string_view(" \t\n\r,:[]{}\"").find(text[i]) == std::string_view::npos) {
        ++i;
      }
    }
  }
  return s;
}

// "a string", "an array", ...: what a JSON value is, for "found ..." in messages.
std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::null:
      return "null";
    case json::value_t::number_float:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "a number (" + j.dump() + ")";
    default:
      return "a value of another kind";
  }
}

std::string in_quotes(const std::string& s) { return "'" + printable(s, 128) + "'"; }

// What is wrong with `value` as entry field `field`; "" when nothing is.
std::string field_problem(const std::string& field, const std::string& value) {
  const bool printable_text = printable(value, value.size() + 1) == value;
  if (field == "spec") {
    if (value.empty()) {
      return "expected a spec path relative to the lockfile's directory, found an empty string";
    }
    if (value.size() > kMaxLockPathBytes) {
      return "expected a path of at most " + std::to_string(kMaxLockPathBytes) + " bytes, found " +
             std::to_string(value.size());
    }
    if (!printable_text) {
      return "expected a path of printable characters, found " + in_quotes(value);
    }
    const std::filesystem::path p(value);
    if (p.is_absolute()) {
      return "expected a path relative to the lockfile's directory, found the absolute path " + in_quotes(value);
    }
    const std::string normal = p.lexically_normal().generic_string();
    if (normal != value) {
      return "expected a path in normal form (" + in_quotes(normal) + "), found " + in_quotes(value);
    }
    const std::string file = p.filename().string();
    if (file.empty() || file == "." || file == "..") {
      return "expected the path of a spec file, found " + in_quotes(value);
    }
    return "";
  }
  if (field == "name") {
    if (value.size() > spec::kMaxNameLength || !spec::is_identifier(value)) {
      return "expected the spec's name (an identifier of at most " + std::to_string(spec::kMaxNameLength) +
             " characters), found " + in_quotes(value);
    }
    return "";
  }
  if (field == "arch") {
    auto resolved = spec::resolve_arch(value);
    if (value.empty() || !resolved || *resolved != value) {
      return "expected a resolved target architecture such as sm_90a, found " + in_quotes(value);
    }
    return "";
  }
  if (field == "key" || field == "kernel") {
    if (!is_digest(value)) {
      return "expected 32 lowercase hex digits (an XXH3-128 digest), found " + in_quotes(value);
    }
    return "";
  }
  if (field == "generator") {
    if (value.empty() || value.size() > kMaxLockGeneratorBytes || !printable_text) {
      return "expected the name of the generator (printable, 1 to " + std::to_string(kMaxLockGeneratorBytes) +
             " bytes), found " + in_quotes(value);
    }
    return "";
  }
  if (field == "verification") {
    if (value != "unverified" && value != "verified") {
      return "expected unverified or verified, found " + in_quotes(value);
    }
    return "";
  }
  return "unknown field " + in_quotes(field);
}

// The entry's field named `field` (one of kEntryFields).
template <typename Entry>
auto& field_of(Entry& e, const std::string& field) {
  static const std::map<std::string, std::string LockEntry::*> members = {
      {"arch", &LockEntry::arch}, {"generator", &LockEntry::generator},      {"kernel", &LockEntry::kernel},
      {"key", &LockEntry::key},   {"name", &LockEntry::name},                {"spec", &LockEntry::spec},
      {"verification", &LockEntry::verification}};
  return e.*members.at(field);
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    out += (out.empty() ? "" : ", ") + w;
  }
  return out;
}

// Words of a shell command: quoted when they hold anything but safe characters.
std::string shell_word(const std::string& s) {
  const bool safe = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_./+-=:,@%").find(c) != std::string_view::npos;
  });
  if (safe) {
    return s;
  }
  std::string out = "'";
  for (char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

}  // namespace

Lockfile::Lockfile(std::vector<LockEntry> entries) : m_entries(std::move(entries)) {
  std::stable_sort(m_entries.begin(), m_entries.end(),
                   [](const LockEntry& a, const LockEntry& b) { return a.spec < b.spec; });
}

const LockEntry* Lockfile::find(std::string_view spec) const {
  auto it = std::lower_bound(m_entries.begin(), m_entries.end(), spec,
                             [](const LockEntry& e, std::string_view s) { return e.spec < s; });
  return it != m_entries.end() && it->spec == spec ? &*it : nullptr;
}

const LockEntry* Lockfile::find_name_arch(std::string_view name, std::string_view arch) const {
  const LockEntry* found = nullptr;
  for (const LockEntry& e : m_entries) {
    if (e.name == name && e.arch == arch) {
      if (found != nullptr) {
        return nullptr;
      }
      found = &e;
    }
  }
  return found;
}

void Lockfile::put(LockEntry entry) {
  auto it = std::lower_bound(m_entries.begin(), m_entries.end(), entry.spec,
                             [](const LockEntry& e, const std::string& s) { return e.spec < s; });
  if (it != m_entries.end() && it->spec == entry.spec) {
    *it = std::move(entry);
  } else {
    m_entries.insert(it, std::move(entry));
  }
}

Expected<Lockfile, Failure> parse_lockfile(std::string_view text, const std::string& path) {
  if (text.size() > kMaxLockfileBytes) {
    return fail(path + ": expected a lockfile of at most " + std::to_string(kMaxLockfileBytes) + " bytes, found " +
                (text.size() == kMaxLockfileBytes + 1 ? "more" : std::to_string(text.size())));
  }
  auto scanned = scan(text, path, /*with_positions=*/false);
  if (!scanned) {
    return unexpected(scanned.error());
  }
  const Scan& s = *scanned;
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 2, column 8: syntax error ...": keep
    // what follows the parser's own position, and say the position as file:line:col.
    std::string what = e.what();
    if (size_t col = what.find("column "); col != std::string::npos) {
      if (size_t colon = what.find(": ", col); colon != std::string::npos) {
        what = what.substr(colon + 2);
      }
    }
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    return fail(path + ":" + position(text, offset) + ": invalid JSON: " + printable(what, 256));
  }
  // "<path>:<line>:<col>: " of the value at `pointer`, for an error message.
  std::optional<Scan> positions;
  auto at = [&](const std::string& pointer) {
    if (!positions) {
      positions = scan(text, path, /*with_positions=*/true).value_or(Scan{});
    }
    auto it = positions->where.find(pointer);
    return path + ":" + position(text, it == positions->where.end() ? 0 : it->second) + ": ";
  };
  if (s.duplicate) {
    return fail(path + ":" + position(text, *s.duplicate) + ": field " + in_quotes(s.duplicate_key) +
                " appears twice in one object (first at " + position(text, s.duplicate_first) + ")");
  }
  if (!root.is_object()) {
    return fail(at("") + "expected a lockfile (a JSON object with \"format\" and \"entries\"), found " +
                kind_of(root));
  }
  for (const auto& [k, v] : root.items()) {
    if (k != "about" && k != "entries" && k != "format") {
      return fail(at("/" + escape_segment(k)) + "unknown field " + in_quotes(k) +
                  " (a lockfile has about, entries and format)");
    }
  }
  const auto format = root.find("format");
  if (format == root.end()) {
    return fail(path + ": expected a \"format\" field (the lockfile format, " +
                std::to_string(kLockfileFormatVersion) + "), found none");
  }
  if (!format->is_number_integer()) {
    return fail(at("/format") + "expected an integer for \"format\", found " + kind_of(*format));
  }
  if (format->get<int64_t>() != kLockfileFormatVersion) {
    return fail(at("/format") + "lockfile format " + format->dump() + " is not supported: this kernelgen reads format " +
                std::to_string(kLockfileFormatVersion) +
                " (use the kernelgen that wrote it, or write the lockfile again with `kernelgen lock --update`)");
  }
  if (auto about = root.find("about"); about != root.end() && !about->is_string()) {
    return fail(at("/about") + "expected a string for \"about\", found " + kind_of(*about));
  }
  const auto entries = root.find("entries");
  if (entries == root.end()) {
    return fail(path + ": expected an \"entries\" field (an array), found none");
  }
  if (!entries->is_array()) {
    return fail(at("/entries") + "expected an array for \"entries\", found " + kind_of(*entries));
  }
  if (entries->size() > kMaxLockEntries) {
    return fail(at("/entries") + "expected at most " + std::to_string(kMaxLockEntries) + " entries, found " +
                std::to_string(entries->size()));
  }
  std::vector<LockEntry> list;
  list.reserve(entries->size());
  std::map<std::string, size_t> seen;  // spec → index
  for (size_t i = 0; i < entries->size(); ++i) {
    const json& e = (*entries)[i];
    const std::string here = "/entries/" + std::to_string(i);
    const std::string which = "entry " + std::to_string(i + 1);
    if (!e.is_object()) {
      return fail(at(here) + "expected " + which + " to be an object, found " + kind_of(e));
    }
    for (const auto& [k, v] : e.items()) {
      if (std::find(kEntryFields.begin(), kEntryFields.end(), k) == kEntryFields.end()) {
        return fail(at(here + "/" + escape_segment(k)) + "unknown field " + in_quotes(k) + " in " + which +
                    " (expected " + joined(kEntryFields) + ")");
      }
    }
    LockEntry entry;
    for (const std::string& field : kEntryFields) {
      const auto v = e.find(field);
      if (v == e.end()) {
        return fail(at(here) + which + " lacks the field \"" + field + "\" (an entry has " + joined(kEntryFields) + ")");
      }
      if (!v->is_string()) {
        return fail(at(here + "/" + field) + "expected a string for \"" + field + "\" in " + which + ", found " +
                    kind_of(*v));
      }
      std::string value = v->get<std::string>();
      if (std::string problem = field_problem(field, value); !problem.empty()) {
        return fail(at(here + "/" + field) + "\"" + field + "\" of " + which + ": " + problem);
      }
      field_of(entry, field) = std::move(value);
    }
    if (auto [it, fresh] = seen.emplace(entry.spec, i); !fresh) {
      return fail(at(here + "/spec") + "spec " + in_quotes(entry.spec) + " is locked twice (entries " +
                  std::to_string(it->second + 1) + " and " + std::to_string(i + 1) + ")");
    }
    list.push_back(std::move(entry));
  }
  return Lockfile(std::move(list));
}

Expected<Lockfile, Failure> read_lockfile(const std::string& path) {
  struct ::stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const bool missing = errno == ENOENT || errno == ENOTDIR;
    return fail(os_error("cannot read the lockfile", path), missing ? Failure::Kind::NotFound : Failure::Kind::Error);
  }
  if (!S_ISREG(st.st_mode)) {
    return fail("cannot read the lockfile " + path + ": expected a regular file, found " +
                (S_ISDIR(st.st_mode) ? "a directory" : "a special file"));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxLockfileBytes) {
    return fail(path + ": expected a lockfile of at most " + std::to_string(kMaxLockfileBytes) + " bytes, found " +
                std::to_string(st.st_size));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return fail(os_error("cannot open the lockfile", path));
  }
  std::string text;
  char buf[65536];
  while (text.size() <= kMaxLockfileBytes) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::string message = os_error("cannot read the lockfile", path);
      ::close(fd);
      return fail(message);
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (text.size() > kMaxLockfileBytes) {
    text.resize(kMaxLockfileBytes + 1);  // it grew while read; parse_lockfile refuses it
  }
  return parse_lockfile(text, path);
}

Expected<void, Failure> validate_entries(const std::vector<LockEntry>& entries) {
  if (entries.size() > kMaxLockEntries) {
    return fail("expected at most " + std::to_string(kMaxLockEntries) + " lockfile entries, found " +
                std::to_string(entries.size()));
  }
  std::set<std::string> seen;
  for (const LockEntry& e : entries) {
    for (const std::string& field : kEntryFields) {
      if (std::string problem = field_problem(field, field_of(e, field)); !problem.empty()) {
        return fail("lockfile entry for spec " + in_quotes(e.spec) + ": \"" + field + "\": " + problem);
      }
    }
    if (!seen.insert(e.spec).second) {
      return fail("spec " + in_quotes(e.spec) + " would be locked twice");
    }
  }
  return {};
}

Expected<std::string, Failure> lockfile_text(const Lockfile& lock) {
  KG_TRY(validate_entries(lock.entries()));
  json entries = json::array();
  for (const LockEntry& e : lock.entries()) {
    json j = json::object();  // std::map: keys sorted
    for (const std::string& field : kEntryFields) {
      j[field] = field_of(e, field);
    }
    entries.push_back(std::move(j));
  }
  const json root = {{"about", kAbout}, {"entries", std::move(entries)}, {"format", kLockfileFormatVersion}};
  try {
    return root.dump(2, ' ', false, json::error_handler_t::strict) + "\n";
  } catch (const json::type_error& e) {
    return fail(std::string("cannot write the lockfile: a path is not valid UTF-8 (") + e.what() + ")");
  }
}

Expected<bool, Failure> write_lockfile(const std::string& path, const Lockfile& lock) {
  auto text = lockfile_text(lock);
  if (!text) {
    return unexpected(text.error());
  }
  auto wrote = write_file_if_changed(path, *text);
  if (!wrote) {
    return fail("cannot write the lockfile: " + wrote.error().message);
  }
  return *wrote;
}

std::string lock_spec_path(const std::string& lockfile_path, const std::string& spec_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto resolved_dir = [&ec](const fs::path& p) {
    fs::path abs = fs::absolute(p, ec);
    if (ec) {
      abs = p;
    }
    fs::path canon = fs::weakly_canonical(abs, ec);
    return (ec ? abs : canon).lexically_normal();
  };
  const fs::path lock_dir = resolved_dir(fs::path(lockfile_path).parent_path().empty()
                                             ? fs::path(".")
                                             : fs::path(lockfile_path).parent_path());
  const fs::path spec(spec_file);
  const fs::path spec_dir = resolved_dir(spec.parent_path().empty() ? fs::path(".") : spec.parent_path());
  const fs::path full = (spec_dir / spec.filename()).lexically_normal();
  fs::path rel = full.lexically_relative(lock_dir);
  if (rel.empty()) {
    return full.generic_string();
  }
  return rel.lexically_normal().generic_string();
}

std::string lock_command(const std::string& lockfile_path, const std::string& spec_file, const std::string& arch,
                         bool update) {
  std::string cmd = "kernelgen lock";
  if (update) {
    cmd += " --update";
  }
  cmd += " --lockfile " + shell_word(lockfile_path);
  if (arch != kDefaultArch) {
    cmd += " --arch " + shell_word(arch);
  }
  return cmd + " " + shell_word(spec_file);
}

Expected<void, Failure> check_locked(const Lockfile& lock, const std::string& lockfile_path, const Resolved& r) {
  const std::string rel = lock_spec_path(lockfile_path, r.spec_file);
  const LockEntry* entry = lock.find(rel);
  if (entry == nullptr) {
    entry = lock.find_name_arch(r.name, r.arch);
  }
  if (entry == nullptr) {
    return fail(r.name + " is not locked in " + lockfile_path + " (no entry for spec '" +
                printable(rel) + "', nor one for " + r.name + " on " + r.arch + "): lock it with `" +
                lock_command(lockfile_path, r.spec_file, r.arch, false) + "`");
  }
  const std::string which = entry->spec == rel ? "" : " (its entry for '" + entry->spec + "')";
  if (entry->key != r.key) {
    return fail(r.name + " resolves to key " + r.key + ", but " + lockfile_path +
                " locks it at key " + entry->key + which +
                (entry->arch != r.arch ? " for " + entry->arch + " (this build is for " + r.arch + ")" : "") +
                ": the spec or KernelGen changed (the key covers the spec's meaning, the target architecture and "
                "the generator and verifier versions). If the change is intended, accept it with `" +
                lock_command(lockfile_path, r.spec_file, r.arch, true) + "`");
  }
  if (entry->kernel != r.kernel) {
    return fail(r.name + " (key " + r.key + ") is locked to kernel " + entry->kernel + " in " +
                lockfile_path + which + ", but the cache holds kernel " + r.kernel +
                " for that key: the cache holds a different kernel for the same key (generated again, e.g. by "
                "recache or the closed loop, or imported). If the new kernel is intended, accept it with `" +
                lock_command(lockfile_path, r.spec_file, r.arch, true) +
                "`; else bring back the locked kernel (e.g. `kernelgen cache import` a bundle that holds it)");
  }
  return {};
}

}  // namespace kg::lock

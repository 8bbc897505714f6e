#include "protocol/request_check.h"

namespace kg::protocol {

namespace {

Expected<void, std::string> check_size(const char* what, size_t size, size_t limit) {
  if (size > limit) {
    return unexpected(std::string(what) + " is " + std::to_string(size) + " bytes; the limit is " +
                      std::to_string(limit));
  }
  return {};
}

}  // namespace

Expected<void, std::string> check_generate(const GenerateRequest& request) {
  KG_TRY(check_size("the spec", request.spec.size(), kMaxSpecBytes));
  KG_TRY(check_size("the file name", request.file.size(), kMaxFileBytes));
  KG_TRY(check_size("the architecture", request.arch.size(), kMaxArchBytes));
  return {};
}

Expected<void, std::string> check_name(std::string_view name) {
  if (name.size() > kMaxNameBytes) {
    return unexpected("the spec name is " + std::to_string(name.size()) + " bytes; the limit is " +
                      std::to_string(kMaxNameBytes));
  }
  return {};
}

Expected<void, std::string> check_arch(std::string_view arch) {
  // "sm_" digits [suffix]; anything else was not resolved by spec::resolve_arch.
  size_t i = arch.rfind("sm_", 0) == 0 ? 3 : 0;
  int cc = 0;
  const size_t digits_start = i;
  while (i < arch.size() && arch[i] >= '0' && arch[i] <= '9' && i - digits_start < 4) {
    cc = cc * 10 + (arch[i++] - '0');
  }
  const std::string_view suffix = arch.substr(i);
  if (digits_start == 0 || i == digits_start || !(suffix.empty() || suffix == "a" || suffix == "f")) {
    return unexpected("unknown target architecture '" + printable(arch) + "' (expected sm_<cc>, e.g. sm_90a)");
  }
  if (cc < 80) {
    return unexpected("target architecture " + std::string(arch) +
                      ": the template kernels need sm_80 or newer (mma.sync on bf16, cp.async)");
  }
  return {};
}

std::string printable(std::string_view text, bool keep_newlines) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && !(keep_newlines && c == '\n')) || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace kg::protocol

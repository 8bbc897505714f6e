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


}  // namespace kg::protocol

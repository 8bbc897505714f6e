// The built-in template generator (docs/design.md §1): FlashAttention-class kernels from
// core/codegen/templates/ with the spec's mods inlined. The embedded default: it needs no LLM and
// no GPU, and its output is a pure function of the spec, the key and the arch.
#pragma once

#include "generate/generator.h"

namespace kg::generate {

class TemplateGenerator final : public Generator {
 public:
  const char* name() const override { return "template"; }
  // Refuses archs below sm_80 and spellings other than sm_XY[a|f].
  Expected<void, Failure> check(const spec::Spec& spec, const std::string& arch) const override;
  // Kernel::verification is left unset: emit verifies template kernels.
  Expected<Kernel, Failure> generate(const Request& request) override;
};

}  // namespace kg::generate

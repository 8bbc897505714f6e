#include "generate/template_generator.h"

#include <exception>

#include "codegen/codegen.h"
#include "version.h"

namespace kg::generate {

Expected<void, Failure> TemplateGenerator::check(const spec::Spec& spec, const std::string& arch) const {
  (void)spec;  // every checked spec has a template; only the arch can be out of reach
  try {
    (void)codegen::template_families(arch);
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (why.rfind("codegen: ", 0) == 0) {
      why.erase(0, 9);
    }
    return fail("the template generator cannot target this: " + why);
  }
  return {};
}

Expected<Kernel, Failure> TemplateGenerator::generate(const Request& request) {
  const spec::Spec& spec = *request.spec;
  KG_TRY(check(spec, request.arch));
  // The code generator throws std::invalid_argument for what a checked spec cannot be; a bug
  // there must be this spec's error, not the end of the process (a daemon serves other builds).
  try {
    codegen::Provenance prov{spec.name, request.key};
    Kernel k;
    k.source = codegen::emit_template_kernel(spec, prov, request.arch);
    k.header = codegen::emit_header(spec, prov);
    k.generator = kGeneratorVersion;
    return k;
  } catch (const std::exception& e) {
    return fail("the template generator failed for " + spec.name + ": " + e.what());
  } catch (...) {
    return fail("the template generator failed for " + spec.name + " (unknown exception)");
  }
}

}  // namespace kg::generate

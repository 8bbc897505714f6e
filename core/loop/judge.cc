#include "loop/judge.h"

#include <memory>

namespace kg::loop {

namespace {

class VerifierJudge final : public Judge {
 public:
  VerifierJudge(verify::VerifierSetup setup, const generate::Request& request)
      : m_setup(std::move(setup)),
        m_spec(*request.spec),
        m_spec_yaml(request.context.spec_yaml) {
    m_options.arch = request.arch;
    m_options.spec_file = request.context.spec_file;
  }

  Expected<verify::VerifyReport, Failure> compile(const std::string& source) override {
    verify::VerifyOptions opt = m_options;
    opt.run = false;
    return verify::verify_kernel(m_spec, m_spec_yaml, source, opt, m_setup);
  }

  Expected<verify::VerifyReport, Failure> verify(const std::string& source) override {
    return verify::verify_kernel(m_spec, m_spec_yaml, source, m_options, m_setup);
  }

 private:
  const verify::VerifierSetup m_setup;
  const spec::Spec m_spec;
  const std::string m_spec_yaml;
  verify::VerifyOptions m_options;
};

}  // namespace

JudgeFactory verifier_judges(verify::VerifierSetup setup) {
  return [setup = std::move(setup)](const generate::Request& request) -> Expected<std::unique_ptr<Judge>, Failure> {
    if (request.context.spec_yaml.empty()) {
      return fail("internal error: the loop was asked to generate " + request.spec->name +
                  " without the spec's text, which the verifier's runner parses again");
    }
    return std::unique_ptr<Judge>(std::make_unique<VerifierJudge>(setup, request));
  };
}

}  // namespace kg::loop

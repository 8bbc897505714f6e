#include "test_backend.h"

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace kg::daemon {

std::string TestKnobs::describe() const {
  std::string s;
  if (delay_ms > 0) {
    s += " every job waits " + std::to_string(delay_ms) + " ms;";
  }
  if (!gate_file.empty()) {
    s += " every job waits for the file " + gate_file + ";";
  }
  if (!throw_for.empty()) {
    s += " the job of spec " + throw_for + " throws;";
  }
  return s;
}

Expected<JobBackend::Done, Failure> TestKnobBackend::generate(const JobRequest& request, DeviceLocks& gpus) {
  if (!m_knobs.gate_file.empty()) {
    while (::access(m_knobs.gate_file.c_str(), F_OK) != 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (m_knobs.delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(m_knobs.delay_ms));
  }
  const std::string& name = request.spec->name;
  if (m_knobs.throw_for == name) {
    throw std::runtime_error("testing knob KERNELGEN_TEST_JOB_THROW: the job of " + name + " throws");
  }
  if (m_knobs.throw_for == name + ":int") {
    throw 42;
  }
  return m_inner.generate(request, gpus);
}

}  // namespace kg::daemon

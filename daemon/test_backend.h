// Testing knobs of kernelgend (its --help, "testing only"), as a JobBackend wrapped around the
// real one: slow jobs, jobs held until a file appears, and jobs that throw. Real-process tests
// (tests/daemon/daemon_test.sh) use them to overlap requests deterministically and to show that
// a faulty job leaves the daemon serving everyone else.
#pragma once

#include <string>

#include "jobs.h"

namespace kg::daemon {

struct TestKnobs {
  int delay_ms = 0;       // KERNELGEN_TEST_JOB_DELAY_MS: every generate sleeps this long first
  std::string gate_file;  // KERNELGEN_TEST_JOB_GATE: every generate waits until this file exists
  // KERNELGEN_TEST_JOB_THROW: "<spec name>" makes the generate of that spec throw a
  // std::runtime_error; "<spec name>:int" makes it throw an int (not a std::exception).
  std::string throw_for;

  bool any() const { return delay_ms > 0 || !gate_file.empty() || !throw_for.empty(); }
  // One line for the log: which knobs are set.
  std::string describe() const;
};

class TestKnobBackend : public JobBackend {
 public:
  TestKnobBackend(JobBackend& inner, TestKnobs knobs) : m_inner(inner), m_knobs(std::move(knobs)) {}

  Expected<void, Failure> check(const JobRequest& request) override { return m_inner.check(request); }
  Expected<Done, Failure> lookup(const JobRequest& request) override { return m_inner.lookup(request); }
  // The gate, then the delay, then the fault; then the real generation.
  Expected<Done, Failure> generate(const JobRequest& request, DeviceLocks& gpus) override;

 private:
  JobBackend& m_inner;
  const TestKnobs m_knobs;
};

}  // namespace kg::daemon

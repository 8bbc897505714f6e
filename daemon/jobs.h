// Jobs of the daemon (docs/protocol.md §4, §6): one job per key (single flight), a bounded number
// generating at once, one GPU verification at a time per device. A job runs on its own thread and
// goes on whether or not anyone still waits for it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "protocol/protocol.h"
#include "spec/ast.h"
#include "util/expected.h"

namespace kg::daemon {

// The protocol types a job reports in (core/protocol/protocol.h).
using protocol::Outcome;
using protocol::Progress;
using protocol::Result;

// One mutex per GPU: held around each verification on that device, so verifications never
// share a GPU (their timings would be wrong) while everything else in the jobs runs in parallel.
// The verifier runs on the default CUDA device, so today every job verifies on device 0.
class DeviceLocks {
 public:
  explicit DeviceLocks(int devices) : m_mutexes(devices > 0 ? devices : 1) {}
  int devices() const { return static_cast<int>(m_mutexes.size()); }
  std::mutex& device(int index) { return m_mutexes.at(index); }

 private:
  std::vector<std::mutex> m_mutexes;
};

// What a generate request asks for, as the job sees it.
struct JobRequest {
  std::shared_ptr<const spec::Spec> spec;  // parsed and checked
  std::string spec_text;                   // the YAML it was parsed from (the verifier parses it again)
  std::string file;                        // for diagnostics and reports
  std::string arch;                        // resolved
  std::string key;                         // spec_key(*spec, arch)
  bool verify = true;                      // verify on a GPU when one is present
  double budget_s = -1;                    // the closed loop's time (-1: the default; 0: template only)
  // Set by JobRunner to post the generator's progress to the job's waiters.
  std::function<void(const std::string& stage, const std::string& message)> progress;
};

// What serving a key takes, behind an interface so that the job logic is tested without a cache,
// a code generator or a GPU (jobs_test.cc). Called from several threads at once.
//
// Implementations report failures as values; an exception of any type that escapes lookup() or
// generate() is caught by JobRunner and ends that request or job as an error for all its waiters
// (it never reaches other jobs or the daemon).
class JobBackend {
 public:
  struct Done {
    bool cache_hit = false;    // found in the cache (by lookup, or by generate's own re-check)
    cache::Verification verification = cache::Verification::Unverified;  // the stored record's state
  };
  virtual ~JobBackend() = default;
  // Whether the request can be served at all (the generator builds for its arch). Called before
  // lookup; an error is the request's answer and no job starts. Default: everything can.
  virtual Expected<void, Failure> check(const JobRequest& request) {
    (void)request;
    return {};
  }
  // A complete cache entry for the key? Errors: NotFound (a miss), Error (the cache cannot be
  // read; the message says why).
  virtual Expected<Done, Failure> lookup(const JobRequest& request) = 0;
  // Generates, verifies (holding `gpus` around each verification) and stores the kernel, or finds
  // that it was stored meanwhile. Errors say what failed.
  virtual Expected<Done, Failure> generate(const JobRequest& request, DeviceLocks& gpus) = 0;
};

// One key's job: its progress so far and, once finished, its result. Shared by the job's thread
// and every connection waiting for it.
class Job {
 public:
  Job(std::string key, std::string name);

  const std::string& key() const { return m_key; }
  const std::string& name() const { return m_name; }

  // Adds a progress event (stage, message) stamped with the time since the job started.
  void post(const std::string& stage, const std::string& message);
  // Sets the result (outcome Generated or CacheHit when ok) and wakes every waiter.
  void finish(Result result);

  // Waits up to `timeout` for events past the first `seen` or for the result. Appends new events
  // to `events` and advances `seen`; returns the result once the job has finished.
  std::optional<Result> wait(size_t& seen, std::vector<Progress>& events, std::chrono::milliseconds timeout);

 private:
  const std::string m_key;
  const std::string m_name;
  const std::chrono::steady_clock::time_point m_start;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<Progress> m_events;
  std::optional<Result> m_result;
};

// A counting semaphore whose limit is known at run time.
class Slots {
 public:
  explicit Slots(int limit) : m_free(limit), m_limit(limit) {}
  void acquire();
  void release();
  int limit() const { return m_limit; }
  // Callers blocked in acquire() now.
  int waiting() const;

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_freed;
  int m_free;
  int m_waiting = 0;
  const int m_limit;
};

// Runs jobs: the job table, generation slots, device locks and the counters they feed.
class JobRunner {
 public:
  struct Options {
    int jobs = 1;  // generation slots
    int gpus = 1;  // GPUs (one lock each; at least one)
  };
  JobRunner(JobBackend& backend, Options options);
  // Waits for running jobs (their threads use this object).
  ~JobRunner();

  // How a generate request is served.
  struct Ticket {
    std::shared_ptr<Job> job;  // the job to wait for; null when `immediate` is the answer
    bool joined = false;       // the job was started by an earlier request
    Result immediate;          // a cache hit, or an error finding out
  };
  // Joins the running job for the request's key, or answers from the cache, or starts a job.
  // Never throws: a backend that throws in lookup(), or a job thread that cannot be started, is
  // an immediate error (and the job's waiters, if any joined meanwhile, get it too).
  Ticket submit(JobRequest request);

  // Jobs running or queued.
  int active() const;
  // Jobs waiting for a generation slot.
  int queued() const { return m_slots.waiting(); }
  // Jobs that generated and stored a kernel.
  int64_t generations() const;
  int jobs_limit() const { return m_slots.limit(); }
  // Blocks until no job is running or queued.
  void wait_idle();

 private:
  // The job's thread: runs it and completes it whatever happens.
  void run(std::shared_ptr<Job> job, JobRequest request) noexcept;
  // Takes a slot, calls the backend; may throw (run() catches).
  Result execute(Job& job, const JobRequest& request);
  // Ends `job` with `result`: out of the job table, counted, waiters woken, no longer active.
  void complete(const std::shared_ptr<Job>& job, Result result) noexcept;

  JobBackend& m_backend;
  const Options m_options;
  Slots m_slots;
  DeviceLocks m_devices;

  mutable std::mutex m_mutex;
  std::condition_variable m_idle;
  std::map<std::string, std::shared_ptr<Job>> m_jobs;  // running jobs by key
  int m_active = 0;
  int64_t m_generations = 0;
};

}  // namespace kg::daemon

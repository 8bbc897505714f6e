// The channel between the judge (kg_verify_runner) and the candidate host (kg_candidate_host):
// fixed-size messages on a SOCK_SEQPACKET socket pair, the host's fd 3 (docs/verifier.md,
// "Trust boundary").
//
//   judge → host   Setup  + two descriptors (SCM_RIGHTS): the shared arena, the candidate object
//                         (a sealed memfd whose bytes the judge checked against their digest)
//   host → judge   Ready  after it mapped the arena, entered its sandbox and loaded the candidate
//   judge → host   Run    call the entry point once on the host's own stream, time it with events
//                         on that stream, synchronize that stream, answer Done (a null run: the
//                         same without the call)
//   judge → host   Sync   cudaDeviceSynchronize (every stream of the host's context), answer Done
//
// Everything the host sends is the candidate's word: its code shares the host's process and can
// write any message. The judge accepts only a message of the exact size, magic, kind and sequence
// number it waits for (else bad_reply), checks every output itself, and uses the reported event
// time only where its own clock agrees.
#pragma once

#include <cstdint>

namespace kg::host {

inline constexpr uint32_t kMagic = 0x4b47484fu;  // "KGHO"
inline constexpr int kChannelFd = 3;
inline constexpr int kMaxParams = 256;  // spec/limits.h kMaxParams
inline constexpr int kMaxTensors = 64;  // spec/limits.h kMaxTensors
inline constexpr uint64_t kNull = ~uint64_t{0};  // an arena offset meaning NULL (lse)

enum class Op : uint32_t { Setup = 1, Ready = 2, Run = 3, Sync = 4, Done = 5 };

struct Setup {
  uint32_t magic = kMagic;
  Op op = Op::Setup;
  uint64_t arena_bytes = 0;
  uint32_t trap_for_diagnosis = 0;  // SandboxPolicy::trap_for_diagnosis
  char symbol[128] = {};            // the entry point, NUL-terminated
};

enum class ReadyStatus : int32_t { Ok = 0, LoadError = 1, MissingEntry = 2, SandboxFailed = 3, ArenaFailed = 4 };

struct Ready {
  uint32_t magic = kMagic;
  Op op = Op::Ready;
  ReadyStatus status = ReadyStatus::Ok;
  char message[1024] = {};  // dlerror() and the like, NUL-terminated
};

// KgAttentionArgs with arena offsets in place of pointers.
struct RunArgs {
  uint64_t q = 0, k = 0, v = 0, out = 0, lse = kNull;
  int32_t head_dim = 0, batch = 0, heads_q = 0, heads_kv = 0, seqlen_q = 0, seqlen_kv = 0;
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {}, out_stride[3] = {};
  float softmax_scale = 0;
  uint32_t n_params = 0, n_tensors = 0;
  double params[kMaxParams] = {};
  uint64_t tensors[kMaxTensors] = {};
};

struct Run {
  uint32_t magic = kMagic;
  Op op = Op::Run;
  uint64_t seq = 0;
  // 1: everything a run does (events on the stream, the synchronization, the answer) but the
  // call: what the judge's clock adds to a run.
  uint32_t null_run = 0;
  RunArgs args;
};

struct Sync {
  uint32_t magic = kMagic;
  Op op = Op::Sync;
  uint64_t seq = 0;
};

struct Done {
  uint32_t magic = kMagic;
  Op op = Op::Done;
  uint64_t seq = 0;
  int32_t entry_status = 0;  // what the entry point returned (cudaError_t)
  int32_t sync_status = 0;   // cudaGetLastError + the synchronization after it (cudaError_t)
  float event_ms = 0;        // start/end events around the call on the host's stream (Run only)
};

}  // namespace kg::host

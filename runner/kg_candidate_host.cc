// kg_candidate_host — the untrusted half of the verifier's GPU side (docs/verifier.md, "Trust
// boundary"). Started by the judge (kg_verify_runner) in its sandbox (core/verify/sandbox.h) with
// the channel of runner/host_protocol.h on fd 3 and its output on a pipe the judge drains.
//
// It initialises CUDA, maps the judge's shared arena, enters the seccomp sandbox and only then
// loads the candidate object (so the candidate's initialisers already run sandboxed), and from
// then on does what the judge asks: call the entry point on buffers in the arena, synchronize. It
// holds nothing the verdict depends on — no reference output, no nonce, no result channel — and
// the judge believes nothing it says about the outputs or itself.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <kernelgen/attention_abi.h>

#include "gpu_problem.h"
#include "host_protocol.h"
#include "shared_arena.h"
#include "verify/sandbox.h"

namespace kg::host {
namespace {

using ForwardFn = cudaError_t (*)(const KgAttentionArgs*, cudaStream_t);

// Receives one message of exactly sizeof(T); false on EOF, error or any other size. With `fds`,
// takes up to `n_fds` descriptors passed along with it.
template <typename T>
bool receive(T& msg, int* fds = nullptr, int n_fds = 0) {
  iovec iov{&msg, sizeof msg};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fds != nullptr) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
  }
  ssize_t n;
  do {
    n = ::recvmsg(kChannelFd, &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof msg) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    return false;
  }
  if (fds != nullptr) {
    int got = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && got < n_fds; ++i) {
          std::memcpy(&fds[got++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
      }
    }
    if (got != n_fds) {
      return false;
    }
  }
  return msg.magic == kMagic;
}

template <typename T>
void send(const T& msg) {
  ssize_t n;
  do {
    n = ::send(kChannelFd, &msg, sizeof msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
}

void ready(ReadyStatus status, const std::string& message) {
  Ready r;
  r.status = status;
  std::snprintf(r.message, sizeof r.message, "%s", message.c_str());
  send(r);
}

int serve() {
  // CUDA first: its initialisation opens device files and starts threads, which the sandbox then
  // forbids (opening) or keeps (threads).
  if (cudaSetDevice(0) != cudaSuccess || cudaFree(nullptr) != cudaSuccess) {
    ready(ReadyStatus::ArenaFailed, std::string("CUDA initialisation failed: ") + cudaGetErrorString(cudaGetLastError()));
    return 3;
  }
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, end = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess ||
      cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&end) != cudaSuccess) {
    ready(ReadyStatus::ArenaFailed, "cannot create the host's stream and events");
    return 3;
  }
  Setup setup;
  int fds[2] = {-1, -1};
  if (!receive(setup, fds, 2) || setup.op != Op::Setup) {
    std::fprintf(stderr, "kg_candidate_host: no setup message from the judge\n");
    return 3;
  }
  setup.symbol[sizeof setup.symbol - 1] = '\0';
  std::unique_ptr<gpu::SharedArena> arena;
  try {
    arena = gpu::SharedArena::import(fds[0], setup.arena_bytes);
  } catch (const std::exception& e) {
    ready(ReadyStatus::ArenaFailed, e.what());
    return 3;
  }
  verify::SandboxPolicy policy;
  policy.trap_for_diagnosis = setup.trap_for_diagnosis != 0;
  if (auto s = verify::enter_candidate_sandbox(policy); !s) {
    ready(ReadyStatus::SandboxFailed, s.error().message);
    return 3;
  }
  // From here on the candidate's code may run (its initialisers run inside dlopen).
  const std::string object = "/proc/self/fd/" + std::to_string(fds[1]);
  void* lib = ::dlopen(object.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = ::dlerror();
    ready(ReadyStatus::LoadError, e ? e : "dlopen failed");
    return 0;
  }
  auto fn = reinterpret_cast<ForwardFn>(::dlsym(lib, setup.symbol));
  if (fn == nullptr) {
    ready(ReadyStatus::MissingEntry, std::string("the object does not export ") + setup.symbol);
    return 0;
  }
  ready(ReadyStatus::Ok, "");

  // Large messages live in static storage: Run carries all params.
  static Run run;
  for (;;) {
    // Peek at the kind, then receive the whole message of that kind.
    uint32_t head[2] = {0, 0};
    ssize_t n;
    do {
      n = ::recv(kChannelFd, head, sizeof head, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n != sizeof head) {
      return 0;  // the judge is gone
    }
    Done done;
    if (head[1] == static_cast<uint32_t>(Op::Sync)) {
      Sync sync;
      if (!receive(sync)) {
        return 3;
      }
      done.seq = sync.seq;
      done.sync_status = cudaDeviceSynchronize();
      send(done);
      continue;
    }
    if (head[1] != static_cast<uint32_t>(Op::Run) || !receive(run)) {
      return 3;
    }
    done.seq = run.seq;
    const RunArgs& r = run.args;
    auto at = [&](uint64_t off) -> void* { return off == kNull || off >= arena->size() ? nullptr : arena->base() + off; };
    static const void* tensors[kMaxTensors];
    KgAttentionArgs a;
    std::memset(&a, 0, sizeof a);
    a.abi_version = KG_ABI_VERSION;
    a.head_dim = r.head_dim;
    a.q = at(r.q), a.k = at(r.k), a.v = at(r.v), a.out = at(r.out), a.lse = static_cast<float*>(at(r.lse));
    a.batch = r.batch, a.heads_q = r.heads_q, a.heads_kv = r.heads_kv, a.seqlen_q = r.seqlen_q, a.seqlen_kv = r.seqlen_kv;
    for (int i = 0; i < 3; ++i) {
      a.q_stride[i] = r.q_stride[i], a.k_stride[i] = r.k_stride[i], a.v_stride[i] = r.v_stride[i];
      a.out_stride[i] = r.out_stride[i];
    }
    a.softmax_scale = r.softmax_scale;
    a.params = r.n_params ? r.params : nullptr;
    for (uint32_t i = 0; i < r.n_tensors && i < kMaxTensors; ++i) {
      tensors[i] = at(r.tensors[i]);
    }
    a.tensors = r.n_tensors ? tensors : nullptr;
    cudaEventRecord(start, stream);
    done.entry_status = run.null_run ? cudaSuccess : fn(&a, stream);
    cudaEventRecord(end, stream);
    cudaError_t e = cudaGetLastError();
    const cudaError_t s = cudaStreamSynchronize(stream);
    done.sync_status = e != cudaSuccess ? e : s;
    float ms = 0;
    if (done.sync_status == cudaSuccess && cudaEventElapsedTime(&ms, start, end) == cudaSuccess) {
      done.event_ms = ms;
    }
    send(done);
  }
}

}  // namespace
}  // namespace kg::host

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return kg::host::serve();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kg_candidate_host: %s\n", e.what());
    return 3;
  }
}

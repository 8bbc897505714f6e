// A stand-in for kg_candidate_host without CUDA, for runner/tests/host_link_test.cc: it speaks the
// host protocol (runner/host_protocol.h) and enters the real sandbox (core/verify/sandbox.h), then
// misbehaves as its first argument says, the way a candidate's code inside the real host could:
//   ok         answers every request properly (event time 1 ms)
//   exit       exits with status 0 at the first Run
//   segv       dies of SIGSEGV at the first Run
//   fork       calls fork() at the first Run (the filter kills it: SIGSYS)
//   hang       never answers the first Run
//   big        answers the first Run with a message larger than Done
//   stale      answers the first Run with the wrong sequence number
//   no-entry   reports that the entry point is missing
//   no-filter  answers Ready without entering the sandbox
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "host_protocol.h"
#include "verify/sandbox.h"

using namespace kg::host;

namespace {

template <typename T>
void send_msg(const T& m) {
  ::send(kChannelFd, &m, sizeof m, MSG_NOSIGNAL);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "ok";
  Setup setup;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  iovec iov{&setup, sizeof setup};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  if (::recvmsg(kChannelFd, &mh, 0) != static_cast<ssize_t>(sizeof setup) || setup.op != Op::Setup) {
    return 3;
  }
  if (mode != "no-filter" && !kg::verify::enter_candidate_sandbox(kg::verify::SandboxPolicy{})) {
    return 3;
  }
  Ready ready;
  if (mode == "no-entry") {
    ready.status = ReadyStatus::MissingEntry;
    std::strcpy(ready.message, "the object does not export kg_x_forward");
  }
  send_msg(ready);
  static Run run;
  for (;;) {
    uint32_t head[2] = {0, 0};
    if (::recv(kChannelFd, head, sizeof head, MSG_PEEK) != sizeof head) {
      return 0;
    }
    Done done;
    if (head[1] == static_cast<uint32_t>(Op::Sync)) {
      Sync s;
      ::recv(kChannelFd, &s, sizeof s, 0);
      done.seq = s.seq;
      send_msg(done);
      continue;
    }
    ::recv(kChannelFd, &run, sizeof run, 0);
    done.seq = run.seq;
    done.event_ms = 1.0f;
    if (mode == "exit") {
      _exit(0);
    } else if (mode == "segv") {
      ::raise(SIGSEGV);
      volatile int* p = nullptr;
      *p = 1;
    } else if (mode == "fork") {
      ::fork();
    } else if (mode == "hang") {
      for (;;) {
        ::pause();
      }
    } else if (mode == "big") {
      char big[sizeof(Done) + 64] = {};
      std::memcpy(big, &done, sizeof done);
      ::send(kChannelFd, big, sizeof big, MSG_NOSIGNAL);
      continue;
    } else if (mode == "stale") {
      done.seq += 7;
    }
    send_msg(done);
  }
}

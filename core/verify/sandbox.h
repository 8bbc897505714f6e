// The candidate host's operating-system sandbox (docs/verifier.md, "Trust boundary").
//
// The verifier's judge (kg_verify_runner) starts the untrusted candidate host (kg_candidate_host)
// with spawn_candidate_host(): a child in new PID, network and mount namespaces where the OS allows,
// with rlimits, a clean environment, PR_SET_PDEATHSIG, and exactly the descriptors it is given. The
// host initialises CUDA and maps the judge's buffers, then calls enter_candidate_sandbox() before it
// loads the candidate object: from then on no_new_privs holds and a seccomp filter (libseccomp)
// kills the process on process creation, exec, file creation or writes, network, signals to other
// processes and ptrace, however the call is spelled (a raw `syscall` instruction included). The
// judge does not take the host's word for any of it: observe_sandbox() reads /proc/<pid> from
// outside, and the judge refuses to run a candidate in a host whose filter is not in force.
//
//   auto host = spawn_candidate_host(spec);          // in the judge
//   ...                                              // host: cuInit, map buffers, then
//   enter_candidate_sandbox(SandboxPolicy{});        // in the host, before dlopen(candidate)
//   auto seen = observe_sandbox(host->pid);          // in the judge: seen->seccomp_filter, ...
//   kill_candidate_host(*host);                      // in the judge: SIGKILL the tree and reap it
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/expected.h"

namespace kg::verify {

struct HostSpawnOptions {
  std::vector<std::string> argv;  // argv[0]: absolute path of the executable
  std::vector<std::string> env;   // exactly this environment ("NAME=value")
  std::string cwd = "/";
  // Descriptors of the caller that become the child's fd 3 (`channel_fd`) and fds 1 and 2
  // (`output_fd`); stdin is /dev/null; every other descriptor is closed at exec.
  int channel_fd = -1;
  int output_fd = -1;
  // Namespaces to try; each one the OS refuses is left out and said so in HostSpawned::notes.
  bool pid_namespace = true;
  bool network_namespace = true;
  bool mount_namespace = true;
  // rlimits in the child: RLIMIT_CORE 0, RLIMIT_FSIZE (0: no file may grow), RLIMIT_NOFILE,
  // RLIMIT_NPROC is not used (it counts every process of the user).
  uint64_t max_file_bytes = 0;
  uint64_t max_open_files = 4096;
};

struct HostSpawned {
  pid_t pid = -1;  // as the caller sees it
  bool pid_namespace = false, network_namespace = false, mount_namespace = false;
  std::string notes;  // why a namespace asked for is not in force ("" when all are)
};

// Starts the host. Failure: fork/clone failed, or the executable could not be started (the child
// reports exec errors through a close-on-exec pipe, so this never returns a pid that exec'd nothing).
Expected<HostSpawned, Failure> spawn_candidate_host(const HostSpawnOptions& options);

// SIGKILL to the host (and, with a PID namespace, everything in it: the namespace dies with its
// init), then reaps it. Returns the wait status as waitpid gave it (or -1 when it was already reaped).
int kill_candidate_host(HostSpawned& host);

struct SandboxPolicy {
  // Descriptors already open stay readable and writable (the channel, the output pipe, CUDA's
  // device files); what is denied is opening new ones that write files or reach the network.
  // Diagnosis only (KERNELGEN_SANDBOX_TRAP=1 in the host): a denied call raises SIGSYS, whose
  // handler prints the system call number on stderr and exits with 159, instead of the kernel
  // killing the process silently. Never used for a verdict.
  bool trap_for_diagnosis = false;
};

// In the calling process, irreversibly: PR_SET_NO_NEW_PRIVS, then the seccomp filter. Denied
// (SECCOMP_RET_KILL_PROCESS: the process dies with SIGSYS):
//   process creation and exec: fork, vfork, clone without CLONE_THREAD, clone3 (answered ENOSYS so
//     that threads fall back to clone), execve, execveat;
//   files: open/openat/creat with O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND or O_TMPFILE in the
//     flags, openat2 (ENOSYS), truncate, ftruncate, unlink*, rename*, mkdir*, rmdir,
//     link*, symlink*, mknod*, chmod*, chown*, utime*, mount, umount2, pivot_root, chroot,
//     name_to_handle_at, open_by_handle_at, memfd_create, io_uring_*;
//   network: socket, socketpair, connect, bind, listen, accept, accept4;
//   other processes: kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_* to any
//     process but the caller itself; ptrace, process_vm_readv, process_vm_writev, kcmp;
//   privileges and kernel state: setuid and kin, setns, unshare, bpf, perf_event_open, keyctl,
//     add_key, request_key, init_module and kin, kexec_*, reboot, swapon/off, personality,
//     userfaultfd, seccomp with a new filter is allowed (it can only restrict further).
// Everything else is allowed: CUDA needs ioctl, mmap, mprotect, futex, threads and more after its
// initialisation. Failure: the kernel or libseccomp refused (the host must then not load the
// candidate).
Expected<void, Failure> enter_candidate_sandbox(const SandboxPolicy& policy);

// What the judge sees of a process from outside, in /proc/<pid>/status and /proc/<pid>/ns/*.
struct SandboxObserved {
  bool no_new_privs = false;    // "NoNewPrivs: 1"
  bool seccomp_filter = false;  // "Seccomp: 2"
  bool pid_namespace = false, network_namespace = false, mount_namespace = false;  // differ from ours
};
Expected<SandboxObserved, Failure> observe_sandbox(pid_t pid);

}  // namespace kg::verify

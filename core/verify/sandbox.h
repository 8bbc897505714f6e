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
  // (`output_fd`); stdin is /dev/null; every other descriptor is closed at exec. `output_fd`
  // should be a pipe or socket: RLIMIT_FSIZE (below) applies to writes to regular files.
  int channel_fd = -1;
  int output_fd = -1;
  // Namespaces to try; each one the OS refuses is left out and said so in HostSpawned::notes.
  // With CAP_SYS_ADMIN (root) they are created directly; otherwise, when `allow_user_namespace`
  // and the kernel allows unprivileged user namespaces, inside a new user namespace that maps the
  // caller's uid and gid to themselves (so that /dev/nvidia* and files keep their meaning).
  // Preference when not all can be had: pid > network > mount (the largest set that works, in
  // that order). A PID namespace comes only with a mount namespace, where the child mounts the
  // namespace's own /proc: with the caller's /proc, /proc/<getpid()> names another process and
  // cuInit fails (CUDA_ERROR_OPERATING_SYSTEM, seen on an H200 machine). With a PID
  // namespace the host is its namespace's init: when it dies, everything it started dies; and the
  // kernel ignores signals whose action is the default when they come from inside the namespace,
  // the host's own raise() and abort() included (abort() then ends in SIGSEGV); faults and the
  // caller's SIGKILL act as usual.
  bool pid_namespace = true;
  bool network_namespace = true;
  bool mount_namespace = true;
  bool allow_user_namespace = true;
  // In a mount namespace: every mount made private (MS_REC | MS_PRIVATE), a new /proc with a PID
  // namespace, then, with `read_only_root`, every mount read-only (mount_setattr AT_RECURSIVE,
  // Linux 5.12) except /proc itself: cuInit fails on a read-only /proc (measured on an H200). Device
  // files stay writable on a read-only mount (the kernel checks the mount only for regular files,
  // directories and links), so CUDA still opens /dev/nvidia*. A refusal is a note, not an error.
  bool read_only_root = true;
  // Before exec: no_new_privs, the capability bounding set emptied (where the caller may), the
  // inheritable and ambient sets cleared. A host started by root then runs as uid 0 without any
  // capability; a host started by another user gains none from file capabilities or set-uid bits.
  bool drop_capabilities = true;
  // rlimits in the child: RLIMIT_CORE 0, RLIMIT_FSIZE (0: no file may grow), RLIMIT_NOFILE
  // (at least 4: fds 0-3), each at most the caller's hard limit. RLIMIT_NPROC is not used (it
  // counts every process of the user).
  uint64_t max_file_bytes = 0;
  uint64_t max_open_files = 4096;
};

struct HostSpawned {
  pid_t pid = -1;  // as the caller sees it; -1 once reaped by kill_candidate_host
  bool pid_namespace = false, network_namespace = false, mount_namespace = false;
  bool user_namespace = false;  // the namespaces were made inside a new user namespace
  bool read_only_root = false;  // the host's mount tree is read-only
  std::string notes;  // why a namespace (or the read-only tree) asked for is not in force ("" when all are)
};

// Starts the host: clone(2) with the namespaces, then in the child only async-signal-safe calls
// (everything is prepared before the clone). The child is in the caller's process group (the
// verifier kills the judge's group on its limits) and gets PR_SET_PDEATHSIG = SIGKILL; that signal
// comes when the *thread* that called this function exits, so call it from a thread that outlives
// the host. Failure: invalid options (empty argv, argv[0] not absolute, a descriptor not open,
// max_open_files < 4), clone failed for a reason other than a refused namespace, or the child
// could not be set up or started (chdir, descriptors, rlimits, exec: the child reports errors
// through a close-on-exec pipe, so this never returns a pid that exec'd nothing). Thread-safe.
Expected<HostSpawned, Failure> spawn_candidate_host(const HostSpawnOptions& options);

// SIGKILL to the host (and, with a PID namespace, everything in it: the namespace dies with its
// init, and the kernel has killed and reaped the rest before the host can be reaped), then reaps
// it (waitpid, retried on EINTR). Returns the wait status as waitpid gave it (the host's own exit
// status when it had already exited), or -1 when it was already reaped; sets host.pid to -1.
int kill_candidate_host(HostSpawned& host);

struct SandboxPolicy {
  // Descriptors already open stay readable and writable (the channel, the output pipe, CUDA's
  // device files); what is denied is opening new ones that write files or reach the network.
  // Diagnosis only (KERNELGEN_SANDBOX_TRAP=1 in the host): a denied call raises SIGSYS, whose
  // handler prints the system call number on stderr and exits with 159, instead of the kernel
  // killing the process silently. Never used for a verdict.
  // The handler is installed before the filter; a candidate could replace it, which is why this
  // is for diagnosis only. clone3 and openat2 still answer ENOSYS.
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
//     userfaultfd, capset, iopl, ioperm, clock and host-name setting, syslog, the new mount API
//     (fsopen, fsmount, move_mount, open_tree, mount_setattr, ...), xattr changes, fallocate,
//     mq_open; seccomp with a new filter is allowed (it can only restrict further).
// Before the filter: the calling thread's capabilities are cleared (effective, permitted,
// inheritable, ambient; the bounding set is spawn_candidate_host's work, before exec). The filter
// is synchronised to every thread of the process (SECCOMP_FILTER_FLAG_TSYNC: CUDA's threads run
// candidate code too, through host callbacks). System calls of another ABI (x86-64's i386 and x32
// entry points) kill the process. Argument checks compare the full 64-bit register: kill(pid, ...)
// is allowed for exactly getpid() as it is when the filter is built, nothing else (kill(0, ...)
// and kill(-1, ...) reach the caller's process group and everyone: denied). Opening a device
// file for writing is denied too: CUDA must be fully initialised (context, allocations) before.
// Everything else is allowed: CUDA needs ioctl, mmap, mprotect, futex, threads and more after its
// initialisation. Failure: the kernel or libseccomp refused (the host must then not load the
// candidate).
Expected<void, Failure> enter_candidate_sandbox(const SandboxPolicy& policy);

// What the judge sees of a process from outside, in /proc/<pid>/task/*/status and /proc/<pid>/ns/*.
// no_new_privs, seccomp_filter and no_capabilities hold only when they hold for every thread.
struct SandboxObserved {
  bool no_new_privs = false;     // "NoNewPrivs: 1" (inherited: also true when the caller has it)
  // "Seccomp: 2" and, where the kernel reports it (Linux 5.9, "Seccomp_filters"), more filters than
  // the calling thread has: a container's own filter (Docker's default profile) does not count.
  bool seccomp_filter = false;
  int seccomp_filters = -1;      // the fewest filters of any thread; -1: not reported
  bool no_capabilities = false;  // "CapEff" and "CapPrm" are 0
  bool pid_namespace = false, network_namespace = false, mount_namespace = false;  // differ from ours
  int threads = 0;               // threads examined
};
// Reads are bounded (64 KiB per status file, 65536 threads, 256 bytes per link). Call it on a
// child that is not yet reaped (its pid cannot be reused meanwhile). Failure: the process does
// not exist or has exited (its namespaces are gone), or /proc is unreadable (the message says
// which file and why).
Expected<SandboxObserved, Failure> observe_sandbox(pid_t pid);

// Exposed for tests: the order in which spawn_candidate_host tries namespace sets. Each attempt is
// a set of namespaces and whether to create them inside a new user namespace; the largest sets come
// first (pid > network > mount), each tried directly, then (when `user_namespace_allowed`) inside
// a user namespace; the last attempt is none at all. A set with pid but not mount is never tried
// (the PID namespace needs its own /proc).
struct NamespaceAttempt {
  bool user = false, pid = false, network = false, mount = false;
};
std::vector<NamespaceAttempt> namespace_attempts(bool pid, bool network, bool mount,
                                                 bool user_namespace_allowed);

// Why this kernel refuses unprivileged user namespaces, from the sysctls under `proc_sys`
// (normally "/proc/sys"): kernel/unprivileged_userns_clone = 0 (Debian, Ubuntu),
// user/max_user_namespaces = 0, or kernel/apparmor_restrict_unprivileged_userns = 1 (Ubuntu);
// "" when none says no (the kernel may still refuse at clone or
// at writing uid_map; spawn_candidate_host then falls back too). Missing files say nothing.
std::string user_namespace_refusal(const std::string& proc_sys);

}  // namespace kg::verify

// kg_sandbox_probe: enters the candidate host's sandbox (core/verify/sandbox.h) and tries one
// action, for core/verify/sandbox_test.cc.
//
//   kg_sandbox_probe [--no-sandbox] [--trap] [--fork-first] ACTION [ARG]
//
// --no-sandbox   do not call enter_candidate_sandbox (spawn tests, and the control runs)
// --trap         SandboxPolicy::trap_for_diagnosis
// cuda           CUDA before and after entering the sandbox (exit 77 without a GPU)
// --fork-first   fork a grandchild before entering the sandbox: it writes "g <pid>\n" on fd 3
//                and waits forever (the spawn tests check that it dies with the host)
//
// A denied action should kill the probe with SIGSYS; when the call returns instead, the probe
// prints "survived: <result> <errno>" and exits 0, so a test expecting SIGSYS fails. Allowed
// actions exit 0 (abort: SIGABRT); an allowed action that fails exits 2 with a message.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "verify/sandbox.h"

extern char** environ;

namespace {

int survived(long result) {
  std::printf("survived: %ld %s\n", result, std::strerror(errno));
  return 0;
}

int failed(const char* what) {
  std::printf("allowed action failed: %s: %s\n", what, std::strerror(errno));
  return 2;
}

// fork (x86-64) or clone(SIGCHLD) (aarch64) by the instruction itself, past any libc wrapper.
long raw_fork() {
#if defined(__x86_64__)
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(static_cast<long>(SYS_fork)) : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 asm("x8") = SYS_clone;
  register long x0 asm("x0") = SIGCHLD;
  register long x1 asm("x1") = 0;
  register long x2 asm("x2") = 0;
  register long x3 asm("x3") = 0;
  register long x4 asm("x4") = 0;
  asm volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
#else
  return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
}

// clone(SIGCHLD): a new process, no CLONE_THREAD, by the instruction itself.
long raw_clone_process() {
#if defined(__x86_64__)
  long ret;
  register long r10 asm("r10") = 0;
  register long r8 asm("r8") = 0;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(static_cast<long>(SYS_clone)), "D"(static_cast<long>(SIGCHLD)), "S"(0L), "d"(0L), "r"(r10),
                 "r"(r8)
               : "rcx", "r11", "memory");
  return ret;
#else
  return raw_fork();
#endif
}

volatile sig_atomic_t g_usr1 = 0;
void on_usr1(int) { g_usr1 = g_usr1 + 1; }

// A thread started before the filter, told to call socket() after it.
int g_go[2] = {-1, -1};
void* early_thread_main(void*) {
  char c;
  if (read(g_go[0], &c, 1) == 1) {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    std::printf("survived: %d %s\n", fd, std::strerror(errno));
  }
  return nullptr;
}

void* thread_main(void* arg) {
  *static_cast<int*>(arg) = 42;
  return nullptr;
}

// Lists /proc/self/fd ("fd N TARGET" per line, the listing's own descriptor left out).
int list_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) {
    return failed("opendir /proc/self/fd");
  }
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == dirfd(d)) {
      continue;
    }
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    std::printf("fd %s %s\n", e->d_name, n > 0 ? target : "?");
  }
  closedir(d);
  return 0;
}

// CUDA through the driver API (dlopen: the probe builds without CUDA). Before the sandbox: cuInit,
// a context, an allocation; after it: allocation, copies, a PTX kernel JIT-compiled and launched,
// a host function on a stream (it runs on a driver thread). Exit 77: no driver or no device.
using CuFn = int (*)(...);
struct Cuda {
  void* lib = nullptr;
  CuFn get(const char* name) const { return reinterpret_cast<CuFn>(dlsym(lib, name)); }
};
Cuda g_cuda;
int g_context_ok = 0;
volatile int g_host_fn_ran = 0;
void host_fn(void*) { g_host_fn_ran = 1; }

int cuda_before() {
  g_cuda.lib = dlopen("libcuda.so.1", RTLD_NOW);
  if (g_cuda.lib == nullptr) {
    std::printf("cuda: no driver (%s)\n", dlerror());
    return 77;
  }
  int count = 0;
  const int init = g_cuda.get("cuInit")(0);
  if (init != 0 || g_cuda.get("cuDeviceGetCount")(&count) != 0 || count == 0) {
    std::printf("cuda: no device (cuInit %d, %d devices)\n", init, count);
    return 77;
  }
  int dev = 0;
  void* ctx = nullptr;
  unsigned long long ptr = 0;
  if (g_cuda.get("cuDeviceGet")(&dev, 0) != 0 || g_cuda.get("cuDevicePrimaryCtxRetain")(&ctx, dev) != 0 ||
      g_cuda.get("cuCtxSetCurrent")(ctx) != 0 || g_cuda.get("cuMemAlloc_v2")(&ptr, size_t{1} << 20) != 0) {
    std::printf("cuda: context or allocation failed before the sandbox\n");
    return 2;
  }
  g_context_ok = 1;
  return 0;
}

int cuda_after() {
  static const char ptx[] =
      ".version 7.0\n.target sm_50\n.address_size 64\n"
      ".visible .entry kg_fill(.param .u64 p) {\n"
      "  .reg .u64 %a;\n  .reg .u32 %v;\n  ld.param.u64 %a, [p];\n  cvta.to.global.u64 %a, %a;\n"
      "  mov.u32 %v, 1234;\n  st.global.u32 [%a], %v;\n  ret;\n}\n";
  unsigned long long ptr = 0;
  void* module = nullptr;
  void* fn = nullptr;
  void* stream = nullptr;
  unsigned value = 0;
  int rc = g_cuda.get("cuMemAlloc_v2")(&ptr, size_t{4} << 20);
  std::printf("cuda: cuMemAlloc after the sandbox: %d\n", rc);
  if (rc != 0) {
    return 2;
  }
  rc = g_cuda.get("cuModuleLoadData")(&module, ptx);
  std::printf("cuda: cuModuleLoadData (PTX JIT): %d\n", rc);
  if (rc != 0 || g_cuda.get("cuModuleGetFunction")(&fn, module, "kg_fill") != 0) {
    return 2;
  }
  void* params[] = {&ptr};
  rc = g_cuda.get("cuStreamCreate")(&stream, 1u);
  if (rc == 0) {
    rc = g_cuda.get("cuLaunchKernel")(fn, 1u, 1u, 1u, 1u, 1u, 1u, 0u, stream, params, nullptr);
  }
  if (rc == 0) {
    rc = g_cuda.get("cuLaunchHostFunc")(stream, host_fn, nullptr);
  }
  if (rc == 0) {
    rc = g_cuda.get("cuStreamSynchronize")(stream);
  }
  if (rc == 0) {
    rc = g_cuda.get("cuMemcpyDtoH_v2")(&value, ptr, sizeof value);
  }
  std::printf("cuda: launch, host function, copy back: %d, value %u, host function ran %d\n", rc, value,
              static_cast<int>(g_host_fn_ran));
  return rc == 0 && value == 1234 && g_host_fn_ran == 1 ? 0 : 2;
}

int run(const std::string& action, const char* arg) {
  // Denied.
  if (action == "fork") {
    const pid_t p = fork();
    if (p == 0) {
      _exit(0);
    }
    return survived(p);
  }
  if (action == "vfork") {
    const pid_t p = vfork();
    if (p == 0) {
      _exit(0);
    }
    return survived(p);
  }
  if (action == "raw_fork" || action == "raw_clone") {
    const long p = action == "raw_fork" ? raw_fork() : raw_clone_process();
    if (p == 0) {
      _exit(0);
    }
    return survived(p);
  }
  if (action == "execve") {
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    return survived(execve("/bin/true", argv, environ));
  }
  if (action == "open_write") {
    return survived(open("/dev/null", O_WRONLY));
  }
  if (action == "open_rdwr") {
    return survived(open("/dev/null", O_RDWR));
  }
  if (action == "open_trunc") {
    return survived(open("kg_probe_file", O_RDONLY | O_TRUNC));
  }
  if (action == "openat_creat") {
    return survived(openat(AT_FDCWD, "kg_probe_file", O_RDONLY | O_CREAT, 0600));
  }
  if (action == "openat_append") {
    return survived(openat(AT_FDCWD, "/dev/null", O_WRONLY | O_APPEND));
  }
  if (action == "creat") {
    return survived(creat("kg_probe_file", 0600));
  }
  if (action == "tmpfile") {  // the __O_TMPFILE bit alone decides (O_RDONLY: the kernel would say EINVAL)
    return survived(open(".", O_TMPFILE | O_RDONLY, 0600));
  }
  if (action == "unlink") {
    return survived(unlink("kg_probe_missing"));
  }
  if (action == "rename") {
    return survived(rename("kg_probe_missing", "kg_probe_other"));
  }
  if (action == "mkdir") {
    return survived(mkdir("kg_probe_dir", 0700));
  }
  if (action == "socket") {
    return survived(socket(AF_UNIX, SOCK_STREAM, 0));
  }
  if (action == "kill_parent") {
    return survived(kill(getppid(), 0));
  }
  if (action == "kill_init") {
    return survived(kill(1, 0));
  }
  if (action == "kill_group") {
    return survived(kill(0, 0));
  }
  if (action == "kill_all") {
    return survived(kill(-1, 0));
  }
  if (action == "tgkill_parent") {
    return survived(syscall(SYS_tgkill, getppid(), getppid(), 0));
  }
  if (action == "kill_high_bits") {  // the pid in the low 32 bits, garbage above: still not "self"
    return survived(syscall(SYS_kill, (1L << 32) | static_cast<long>(getppid()), 0));
  }
  if (action == "ptrace") {
    return survived(ptrace(PTRACE_ATTACH, getppid(), nullptr, nullptr));
  }
  if (action == "process_vm_readv") {
    char buf[8];
    iovec local{buf, sizeof buf}, remote{buf, sizeof buf};
    return survived(process_vm_readv(getppid(), &local, 1, &remote, 1, 0));
  }
  if (action == "chmod") {
    return survived(chmod(".", 0700));
  }
  if (action == "truncate") {
    return survived(truncate("kg_probe_missing", 0));
  }
  if (action == "memfd_create") {
    return survived(syscall(SYS_memfd_create, "kg", 0));
  }
  if (action == "io_uring_setup") {
    char params[120] = {};
    return survived(syscall(SYS_io_uring_setup, 1, params));
  }
  if (action == "setns") {
    return survived(setns(0, 0));
  }
  if (action == "unshare") {
    return survived(unshare(CLONE_NEWNET));
  }
  if (action == "personality") {
    return survived(personality(PER_LINUX));
  }
  if (action == "setuid") {
    return survived(setuid(getuid()));
  }
#if defined(__x86_64__)
  if (action == "x32_socket") {  // socket through the x32 numbering (__X32_SYSCALL_BIT)
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(0x40000000L | SYS_socket), "D"(static_cast<long>(AF_UNIX)), "S"(static_cast<long>(SOCK_STREAM)),
                   "d"(0L)
                 : "rcx", "r11", "memory");
    return survived(ret);
  }
  if (action == "int80_getpid") {  // the i386 entry point (getpid is 20 there): another ABI
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    return survived(ret);
  }
#endif
  if (action == "mount_setattr") {
    return survived(syscall(SYS_mount_setattr, -1, "/", 0, nullptr, 0));
  }
  // Allowed.
  if (action == "none") {
    return 0;
  }
  if (action == "thread") {
    pthread_t t;
    int value = 0;
    if (pthread_create(&t, nullptr, thread_main, &value) != 0 || pthread_join(t, nullptr) != 0) {
      return failed("pthread_create");
    }
    return value == 42 ? 0 : failed("thread result");
  }
  if (action == "read") {
    const int fd = open(arg != nullptr ? arg : "/proc/self/status", O_RDONLY | O_CLOEXEC);
    char buf[64];
    if (fd < 0 || read(fd, buf, sizeof buf) <= 0) {
      return failed("read");
    }
    close(fd);
    return 0;
  }
  if (action == "read_dir") {
    const int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 ? 0 : failed("open O_DIRECTORY");
  }
  if (action == "write1") {
    static const char text[] = "hello from the sandbox\n";
    return write(1, text, sizeof text - 1) == static_cast<ssize_t>(sizeof text - 1) ? 0 : failed("write(1)");
  }
  if (action == "mmap_exec") {
    const size_t size = 4096;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p, size, PROT_READ | PROT_EXEC) != 0) {
      return failed("mmap/mprotect");
    }
    void* q = mmap(nullptr, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return q != MAP_FAILED ? 0 : failed("mmap PROT_EXEC");
  }
  if (action == "abort") {
    std::abort();
  }
  if (action == "kill_self") {
    signal(SIGUSR1, on_usr1);
    if (kill(getpid(), SIGUSR1) != 0 || raise(SIGUSR1) != 0) {
      return failed("kill(getpid())");
    }
    return g_usr1 == 2 ? 0 : failed("SIGUSR1 not handled twice");
  }
  if (action == "clone3_enosys") {
    char args[88] = {};
    const long r = syscall(SYS_clone3, args, sizeof args);
    return r == -1 && errno == ENOSYS ? 0 : survived(r);
  }
  if (action == "openat2_enosys") {
    char how[24] = {};
    const long r = syscall(SYS_openat2, AT_FDCWD, ".", how, sizeof how);
    return r == -1 && errno == ENOSYS ? 0 : survived(r);
  }
  // Spawn tests.
  if (action == "fds") {
    return list_fds();
  }
  if (action == "env") {
    for (char** e = environ; *e != nullptr; ++e) {
      std::printf("env %s\n", *e);
    }
    return 0;
  }
  if (action == "create") {  // O_CREAT in ARG's directory (without the sandbox: the read-only tree)
    const int fd = open(arg, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    std::printf("create %s\n", fd >= 0 ? "ok" : std::strerror(errno));
    return 0;
  }
  if (action == "wait") {  // "ready" on fd 3, then wait for EOF there
    if (write(3, "ready\n", 6) != 6) {
      return failed("write(3)");
    }
    char c;
    while (read(3, &c, 1) > 0) {
    }
    return 0;
  }
  std::fprintf(stderr, "kg_sandbox_probe: unknown action \"%s\"\n", action.c_str());
  return 64;
}

}  // namespace

// kg_sandbox_probe spawn OPTIONS PROGRAM ARGS...: runs PROGRAM through spawn_candidate_host, its
// output on ours, with OPTIONS a comma-separated list of what to leave out (nopid, nonet, nomnt,
// noro, nocaps) or to set (fsize=N, nofile=N), "-" for none; the environment passes through.
// Prints the namespaces, the notes and the wait status. For trying settings on a new machine.
int spawn_mode(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: kg_sandbox_probe spawn OPTIONS PROGRAM ARGS...\n");
    return 64;
  }
  kg::verify::HostSpawnOptions o;
  std::string opts = std::string(argv[2]) + ",";
  for (size_t pos = 0, comma; (comma = opts.find(',', pos)) != std::string::npos; pos = comma + 1) {
    const std::string opt = opts.substr(pos, comma - pos);
    o.pid_namespace = o.pid_namespace && opt != "nopid";
    o.network_namespace = o.network_namespace && opt != "nonet";
    o.mount_namespace = o.mount_namespace && opt != "nomnt";
    o.read_only_root = o.read_only_root && opt != "noro";
    o.drop_capabilities = o.drop_capabilities && opt != "nocaps";
    if (opt.rfind("fsize=", 0) == 0) {
      o.max_file_bytes = std::strtoull(opt.c_str() + 6, nullptr, 10);
    }
    if (opt.rfind("nofile=", 0) == 0) {
      o.max_open_files = std::strtoull(opt.c_str() + 7, nullptr, 10);
    }
  }
  for (int i = 3; i < argc; ++i) {
    o.argv.emplace_back(argv[i]);
  }
  for (char** e = environ; *e != nullptr; ++e) {
    o.env.emplace_back(*e);
  }
  int channel[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    return failed("socketpair");
  }
  o.channel_fd = channel[1];
  o.output_fd = 1;
  auto host = kg::verify::spawn_candidate_host(o);
  if (!host) {
    std::printf("spawn: %s\n", host.error().message.c_str());
    return 1;
  }
  close(channel[1]);
  char c;
  while (read(channel[0], &c, 1) > 0) {
  }
  const pid_t pid = host->pid;
  const int status = kg::verify::kill_candidate_host(*host);
  std::printf("spawn: pid %d ns pid %d net %d mnt %d user %d ro %d notes \"%s\" status %d\n", pid,
              host->pid_namespace, host->network_namespace, host->mount_namespace, host->user_namespace,
              host->read_only_root, host->notes.c_str(), status);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "spawn") == 0) {
    return spawn_mode(argc, argv);
  }
  bool sandbox = true, trap = false, fork_first = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-sandbox") {
      sandbox = false;
    } else if (flag == "--trap") {
      trap = true;
    } else if (flag == "--fork-first") {
      fork_first = true;
    } else {
      std::fprintf(stderr, "kg_sandbox_probe: unknown option %s\n", argv[i]);
      return 64;
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "usage: kg_sandbox_probe [--no-sandbox] [--trap] [--fork-first] ACTION [ARG]\n");
    return 64;
  }
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  if (fork_first) {
    const pid_t p = fork();
    if (p < 0) {
      return failed("fork");
    }
    if (p == 0) {
      // Its pid as the outside sees it: /proc/self names it in the caller's /proc.
      char self[32] = {};
      const ssize_t n = readlink("/proc/self", self, sizeof self - 1);
      const std::string line = std::string("g ") + (n > 0 ? self : "?") + "\n";
      if (write(3, line.data(), line.size()) < 0) {
        _exit(3);
      }
      for (;;) {
        pause();
      }
    }
  }
  const std::string action = argv[i];
  if (action == "cuda") {
    if (const int rc = cuda_before(); rc != 0) {
      return rc;
    }
  }
  pthread_t early;
  if (action == "socket_in_early_thread" &&
      (pipe(g_go) != 0 || pthread_create(&early, nullptr, early_thread_main, nullptr) != 0)) {
    return failed("early thread");
  }
  if (sandbox) {
    kg::verify::SandboxPolicy policy;
    policy.trap_for_diagnosis = trap;
    auto r = kg::verify::enter_candidate_sandbox(policy);
    if (!r) {
      std::fprintf(stderr, "kg_sandbox_probe: %s\n", r.error().message.c_str());
      return 70;
    }
  }
  if (action == "cuda") {
    return cuda_after();
  }
  if (action == "socket_in_early_thread") {  // denied in a thread that predates the filter
    if (write(g_go[1], "x", 1) != 1 || pthread_join(early, nullptr) != 0) {
      return failed("early thread");
    }
    return 0;
  }
  return run(action, i + 1 < argc ? argv[i + 1] : nullptr);
}

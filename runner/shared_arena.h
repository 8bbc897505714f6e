// Device memory the judge shares with the candidate host (docs/verifier.md, "Trust boundary").
//
// The judge allocates one arena with the CUDA virtual memory API (cuMemCreate with a POSIX file
// descriptor handle), exports it as a descriptor and passes that over a Unix socket; the host maps
// the same physical memory. Only this allocation can be opened by another process: everything else
// the judge allocates (cudaMalloc: the reference outputs, its scratch) has no shareable handle at
// all, so the candidate cannot reach it whatever it guesses. Inputs and the candidate's outputs are
// carved out of the arena by a bump allocator; nothing is freed before the arena goes.
//
// Driver entry points come through cudaGetDriverEntryPointByVersion, so nothing links libcuda
// (the binaries still start on a machine without a driver, and say "no device").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kg::gpu {

class SharedArena {
 public:
  // Judge: at least `bytes` of device memory on the current device, shareable as a descriptor.
  // Throws CudaError (gpu_problem.h) when the device or driver cannot.
  static std::unique_ptr<SharedArena> create(size_t bytes);
  // Host: maps the allocation the judge exported as `fd` (its size, as the judge said, in
  // `bytes`). Takes ownership of `fd`. Throws CudaError.
  static std::unique_ptr<SharedArena> import(int fd, size_t bytes);
  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  // Judge: a new descriptor for the allocation (the caller closes it). Throws CudaError.
  int export_fd() const;

  unsigned char* base() const { return m_base; }
  size_t size() const { return m_size; }

  // `bytes` (at least 16) from the arena, 256-byte aligned. Throws std::runtime_error when full.
  unsigned char* allocate(size_t bytes);
  size_t used() const { return m_used; }
  // The offset of `p` from base(); throws std::out_of_range for a pointer outside the arena.
  uint64_t offset_of(const void* p) const;

 private:
  SharedArena() = default;
  // Reserves an address range, maps `handle` there and makes it readable and writable.
  void map(unsigned long long handle);
  unsigned long long m_handle = 0;  // CUmemGenericAllocationHandle
  unsigned char* m_base = nullptr;
  size_t m_size = 0, m_used = 0;
  int m_device = 0;
};

}  // namespace kg::gpu

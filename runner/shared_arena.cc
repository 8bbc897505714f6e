#include "shared_arena.h"

#include <cuda.h>
#include <cuda_runtime.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "gpu_problem.h"

namespace kg::gpu {

namespace {

// The driver functions the arena needs, resolved once through the runtime.
struct Driver {
  CUresult (*get_granularity)(size_t*, const CUmemAllocationProp*, CUmemAllocationGranularity_flags) = nullptr;
  CUresult (*create)(CUmemGenericAllocationHandle*, size_t, const CUmemAllocationProp*, unsigned long long) = nullptr;
  CUresult (*release)(CUmemGenericAllocationHandle) = nullptr;
  CUresult (*reserve)(CUdeviceptr*, size_t, size_t, CUdeviceptr, unsigned long long) = nullptr;
  CUresult (*address_free)(CUdeviceptr, size_t) = nullptr;
  CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long) = nullptr;
  CUresult (*unmap)(CUdeviceptr, size_t) = nullptr;
  CUresult (*set_access)(CUdeviceptr, size_t, const CUmemAccessDesc*, size_t) = nullptr;
  CUresult (*export_handle)(void*, CUmemGenericAllocationHandle, CUmemAllocationHandleType, unsigned long long) = nullptr;
  CUresult (*import_handle)(CUmemGenericAllocationHandle*, void*, CUmemAllocationHandleType) = nullptr;
};

template <typename Fn>
void resolve(const char* name, Fn& fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult status{};
  KG_CUDA(cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &status));
  if (p == nullptr || status != cudaDriverEntryPointSuccess) {
    throw CudaError(std::string("the CUDA driver lacks ") + name);
  }
  fn = reinterpret_cast<Fn>(p);
}

const Driver& driver() {
  static const Driver d = [] {
    Driver r;
    resolve("cuMemGetAllocationGranularity", r.get_granularity);
    resolve("cuMemCreate", r.create);
    resolve("cuMemRelease", r.release);
    resolve("cuMemAddressReserve", r.reserve);
    resolve("cuMemAddressFree", r.address_free);
    resolve("cuMemMap", r.map);
    resolve("cuMemUnmap", r.unmap);
    resolve("cuMemSetAccess", r.set_access);
    resolve("cuMemExportToShareableHandle", r.export_handle);
    resolve("cuMemImportFromShareableHandle", r.import_handle);
    return r;
  }();
  return d;
}

void check(CUresult r, const char* call) {
  if (r != CUDA_SUCCESS) {
    throw CudaError(std::string(call) + " failed: CUresult " + std::to_string(static_cast<int>(r)));
  }
}

CUmemAllocationProp allocation_prop(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return prop;
}

}  // namespace

void SharedArena::map(unsigned long long handle) {
  const Driver& d = driver();
  m_handle = handle;
  CUdeviceptr ptr = 0;
  check(d.reserve(&ptr, m_size, 0, 0, 0), "cuMemAddressReserve");
  m_base = reinterpret_cast<unsigned char*>(ptr);
  check(d.map(ptr, m_size, 0, handle, 0), "cuMemMap");
  CUmemAccessDesc access{};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = m_device;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  check(d.set_access(ptr, m_size, &access, 1), "cuMemSetAccess");
}

std::unique_ptr<SharedArena> SharedArena::create(size_t bytes) {
  const Driver& d = driver();
  std::unique_ptr<SharedArena> a(new SharedArena);
  KG_CUDA(cudaGetDevice(&a->m_device));
  const CUmemAllocationProp prop = allocation_prop(a->m_device);
  size_t granularity = 0;
  check(d.get_granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), "cuMemGetAllocationGranularity");
  a->m_size = (std::max<size_t>(bytes, 1) + granularity - 1) / granularity * granularity;
  CUmemGenericAllocationHandle h = 0;
  check(d.create(&h, a->m_size, &prop, 0), "cuMemCreate");
  a->map(h);
  return a;
}

std::unique_ptr<SharedArena> SharedArena::import(int fd, size_t bytes) {
  const Driver& d = driver();
  std::unique_ptr<SharedArena> a(new SharedArena);
  KG_CUDA(cudaGetDevice(&a->m_device));
  CUmemGenericAllocationHandle h = 0;
  const CUresult r = d.import_handle(&h, reinterpret_cast<void*>(static_cast<intptr_t>(fd)),
                                     CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
  ::close(fd);
  check(r, "cuMemImportFromShareableHandle");
  a->m_size = bytes;
  a->map(h);
  return a;
}

SharedArena::~SharedArena() {
  const Driver& d = driver();
  const auto ptr = reinterpret_cast<CUdeviceptr>(m_base);
  if (m_base != nullptr) {
    d.unmap(ptr, m_size);
    d.address_free(ptr, m_size);
  }
  if (m_handle != 0) {
    d.release(m_handle);
  }
}

int SharedArena::export_fd() const {
  int fd = -1;
  check(driver().export_handle(&fd, m_handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
        "cuMemExportToShareableHandle");
  return fd;
}

unsigned char* SharedArena::allocate(size_t bytes) {
  const size_t n = (std::max<size_t>(bytes, 16) + 255) / 256 * 256;
  if (n > m_size - m_used) {
    throw std::runtime_error("the shared arena (" + std::to_string(m_size >> 20) + " MiB) is full: " +
                             std::to_string(bytes) + " bytes more asked for");
  }
  unsigned char* p = m_base + m_used;
  m_used += n;
  return p;
}

uint64_t SharedArena::offset_of(const void* p) const {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < m_base || c >= m_base + m_size) {
    throw std::out_of_range("a pointer outside the shared arena");
  }
  return static_cast<uint64_t>(c - m_base);
}

}  // namespace kg::gpu

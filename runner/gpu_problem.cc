#include "gpu_problem.h"
#include "shared_arena.h"

#include "device_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace kg::gpu {

void cuda_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) {
    return;
  }
  std::ostringstream os;
  os << call << " failed at " << file << ":" << line << ": " << cudaGetErrorName(e) << ": " << cudaGetErrorString(e);
  throw CudaError(os.str());
}

// ---- conversions ------------------------------------------------------------------------------

namespace {

uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

float bits_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

uint16_t float_to_bf16(float x) {
  uint32_t u = float_bits(x);
  if (std::isnan(x)) {
    return 0x7FC0;
  }
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even (overflow rounds to inf, as it should)
  return static_cast<uint16_t>(u >> 16);
}

uint16_t float_to_fp16(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t exp = (x >> 23) & 0xFF;
  uint32_t mant = x & 0x7FFFFF;
  if (exp == 0xFF) {
    return static_cast<uint16_t>(sign | 0x7C00 | (mant ? 0x200 : 0));
  }
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) {
    return static_cast<uint16_t>(sign | 0x7C00);
  }
  if (e <= 0) {  // fp16 subnormal: value = m * 2^-24, m = (1.mant) >> (14 - e)
    if (e < -10) {
      return static_cast<uint16_t>(sign);
    }
    mant |= 0x800000;
    const int shift = 14 - e;
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (m & 1))) {
      ++m;
    }
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) {
    ++h;  // a carry into the exponent is the correct rounding, up to inf
  }
  return static_cast<uint16_t>(h);
}

float fp16_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) {
    return bits_float(sign | 0x7F800000u | (mant << 13));
  }
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

// Half an ulp of the dtype at magnitude |x| (the most a correctly rounded conversion moves x).
double half_ulp(double x, spec::DType dtype) {
  const int mant_bits = dtype == spec::DType::BF16 ? 7 : 10;
  const int min_exp = dtype == spec::DType::BF16 ? -126 : -14;
  x = std::fabs(x);
  int e = x > 0 ? std::ilogb(x) : min_exp;
  e = std::max(e, min_exp);
  return std::ldexp(1.0, e - mant_bits - 1);
}

}  // namespace

uint16_t float_to_bits(float x, spec::DType dtype) {
  return dtype == spec::DType::BF16 ? float_to_bf16(x) : float_to_fp16(x);
}

float bits_to_float(uint16_t bits, spec::DType dtype) {
  return dtype == spec::DType::BF16 ? bits_float(static_cast<uint32_t>(bits) << 16) : fp16_to_float(bits);
}

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::BHSD: return "bhsd";
    case Layout::BSHD: return "bshd";
    case Layout::Packed: return "packed-qkv";
  }
  return "?";
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "B=" << batch << " Hq=" << heads_q << " Hkv=" << heads_kv << " Sq=" << seqlen_q << " Skv=" << seqlen_kv
     << " layout=" << layout_name(layout) << " lse=" << (lse ? "on" : "off") << " scores~N(0," << score_std << "^2)";
  if (v_mean != 0) {
    os << " v~N(" << v_mean << ",1)";
  }
  return os.str();
}

// ---- DeviceBuffer -----------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(size_t bytes, SharedArena* arena) : m_bytes(std::max<size_t>(bytes, 16)) {
  if (arena != nullptr) {
    m_ptr = arena->allocate(m_bytes);
    m_owned = false;
    return;
  }
  void* p = nullptr;
  KG_CUDA(cudaMalloc(&p, m_bytes));
  m_ptr = static_cast<unsigned char*>(p);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : m_ptr(o.m_ptr), m_bytes(o.m_bytes), m_owned(o.m_owned) {
  o.m_ptr = nullptr;
  o.m_bytes = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  std::swap(m_ptr, o.m_ptr);
  std::swap(m_bytes, o.m_bytes);
  std::swap(m_owned, o.m_owned);
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (m_ptr && m_owned) {
    cudaFree(m_ptr);  // errors here are reported by the next checked call
  }
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  KG_CUDA(cudaMemcpy(m_ptr, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  KG_CUDA(cudaMemcpy(host, m_ptr, bytes, cudaMemcpyDeviceToHost));
}

uint64_t checksum(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < bytes; ++i) {
    h = (h ^ p[i]) * 1099511628211ull;
  }
  return h;
}

// ---- Problem ----------------------------------------------------------------------------------

namespace {

size_t tensor_elem_size(spec::TensorDType t) { return t == spec::TensorDType::Int64 ? 8 : 4; }

// Extent of a declared dimension; `roomy` gives the over-allocation described in Problem.
int64_t dim_extent(const spec::TensorDim& d, const Shape& s, bool roomy) {
  const int64_t seq = std::max({s.seqlen_q, s.seqlen_kv, 1});
  const int64_t heads = std::max(s.heads_q, s.heads_kv);
  switch (d.dim) {
    case spec::Dim::Batch: return s.batch;
    case spec::Dim::HeadsQ: return roomy ? heads : s.heads_q;
    case spec::Dim::HeadsKv: return roomy ? heads : s.heads_kv;
    case spec::Dim::SeqQ: return roomy ? seq : s.seqlen_q;
    case spec::Dim::SeqKv: return roomy ? seq : s.seqlen_kv;
    case spec::Dim::Fixed: return d.extent;
  }
  return 1;
}

void set_strides(int64_t* st, Layout layout, int S, int H, int D, int packed_heads) {
  switch (layout) {
    case Layout::BHSD:
      st[0] = int64_t(H) * S * D, st[1] = int64_t(S) * D, st[2] = D;
      break;
    case Layout::BSHD:
      st[0] = int64_t(S) * H * D, st[1] = D, st[2] = int64_t(H) * D;
      break;
    case Layout::Packed:
      st[0] = int64_t(S) * packed_heads * D, st[1] = D, st[2] = int64_t(packed_heads) * D;
      break;
  }
}

}  // namespace

Problem::Problem(const spec::Spec& sp, const Shape& sh, std::mt19937_64& rng, SharedArena* arena)
    : spec(&sp), shape(sh), head_dim(sp.head_dim), m_arena(arena) {
  if (sh.layout == Layout::Packed && sh.seqlen_q != sh.seqlen_kv) {
    throw std::logic_error("packed layout needs seqlen_q == seqlen_kv");
  }
  if (sh.layout == Layout::Packed && sh.device_fill) {
    throw std::logic_error("device_fill does not support the packed layout");
  }
  fill(rng);
}

void Problem::refill(std::mt19937_64& rng) { fill(rng); }

void Problem::fill_device_qkv(std::mt19937_64& rng) {
  const bool bf16 = spec->dtype == spec::DType::BF16;
  m_device_sums.resize(3);
  for (int t = 0; t < 3; ++t) {
    DeviceBuffer& buf = m_buffers.at(t);
    const size_t n = buf.bytes() / 2;
    device_fill_normal(buf.data(), n, bf16, rng(), t == 2 ? static_cast<float>(shape.v_mean) : 0.0f, nullptr);
    KG_CUDA(cudaGetLastError());
    device_checksum(buf.data(), n * 2, reinterpret_cast<unsigned long long*>(m_sum.data()), nullptr);
    KG_CUDA(cudaGetLastError());
    KG_CUDA(cudaMemcpy(&m_device_sums[t], m_sum.data(), sizeof(unsigned long long), cudaMemcpyDeviceToHost));
  }
}

// Allocates the device buffers on the first call; later calls write new values into the same
// buffers (same pointers) and redraw params and tensors.
void Problem::fill(std::mt19937_64& rng) {
  const spec::Spec& sp = *spec;
  const Shape& sh = shape;
  const bool first = m_buffers.empty();
  const int B = sh.batch, Hq = sh.heads_q, Hkv = sh.heads_kv, Sq = sh.seqlen_q, Skv = sh.seqlen_kv, D = head_dim;
  // q·k ~ N(0, D) for unit-normal q and k, so this scale gives scores ~ N(0, score_std^2).
  softmax_scale = static_cast<float>(sh.score_std / std::sqrt(static_cast<double>(D)));

  const int packed_heads = Hq + 2 * Hkv;
  set_strides(q_stride, sh.layout, Sq, Hq, D, packed_heads);
  set_strides(k_stride, sh.layout, Skv, Hkv, D, packed_heads);
  set_strides(v_stride, sh.layout, Skv, Hkv, D, packed_heads);

  std::normal_distribution<float> normal(0.0f, 1.0f);
  const spec::DType dt = sp.dtype;
  // Logical tensors, rounded to the dtype, and their images in the layout's buffers.
  auto fill_one = [&](std::vector<float>& logical, int H, int S, const int64_t* st, std::vector<uint16_t>& image,
                  size_t base, float mean) {
    logical.resize(size_t(B) * H * S * D);
    size_t n = 0;
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < H; ++h) {
        for (int s = 0; s < S; ++s) {
          for (int d = 0; d < D; ++d, ++n) {
            const uint16_t bits = float_to_bits(mean + normal(rng), dt);
            logical[n] = bits_to_float(bits, dt);
            image[base + b * st[0] + h * st[1] + s * st[2] + d] = bits;
          }
        }
      }
    }
  };
  params.clear();
  tensor_dev_ptrs.clear();
  tensor_host.clear();
  m_uploaded.clear();
  m_device_sums.clear();
  size_t next_buffer = 0;
  // The buffer for the next input: allocated on the first fill, reused after.
  auto buffer = [&](size_t bytes) -> DeviceBuffer& {
    if (first) {
      m_buffers.emplace_back(bytes, m_arena);
    }
    return m_buffers.at(next_buffer++);
  };
  if (sh.device_fill) {
    const size_t nq = size_t(B) * Hq * Sq * D, nkv = size_t(B) * Hkv * Skv * D;
    const size_t counts[3] = {nq, nkv, nkv};
    if (first) {
      m_sum = DeviceBuffer(sizeof(unsigned long long));
    }
    for (int t = 0; t < 3; ++t) {
      buffer(counts[t] * 2);
    }
    fill_device_qkv(rng);
    q.clear(), k.clear(), v.clear();
    q_dev = m_buffers[0].data(), k_dev = m_buffers[1].data(), v_dev = m_buffers[2].data();
  }
  std::vector<std::vector<uint16_t>> images;
  if (sh.device_fill) {
    // done above
  } else if (sh.layout == Layout::Packed) {
    images.emplace_back(size_t(B) * Sq * packed_heads * D);
    fill_one(q, Hq, Sq, q_stride, images[0], 0, 0.0f);
    fill_one(k, Hkv, Skv, k_stride, images[0], size_t(Hq) * D, 0.0f);
    fill_one(v, Hkv, Skv, v_stride, images[0], size_t(Hq + Hkv) * D, static_cast<float>(sh.v_mean));
  } else {
    images.emplace_back(size_t(B) * Hq * Sq * D);
    images.emplace_back(size_t(B) * Hkv * Skv * D);
    images.emplace_back(size_t(B) * Hkv * Skv * D);
    fill_one(q, Hq, Sq, q_stride, images[0], 0, 0.0f);
    fill_one(k, Hkv, Skv, k_stride, images[1], 0, 0.0f);
    fill_one(v, Hkv, Skv, v_stride, images[2], 0, static_cast<float>(sh.v_mean));
  }
  for (auto& img : images) {
    buffer(img.size() * 2).upload(img.data(), img.size() * 2);
    m_uploaded.emplace_back(reinterpret_cast<unsigned char*>(img.data()),
                            reinterpret_cast<unsigned char*>(img.data()) + img.size() * 2);
  }
  if (sh.device_fill) {
    // pointers set above
  } else if (sh.layout == Layout::Packed) {
    q_dev = m_buffers[0].data();
    k_dev = m_buffers[0].data() + size_t(Hq) * D * 2;
    v_dev = m_buffers[0].data() + size_t(Hq + Hkv) * D * 2;
  } else {
    q_dev = m_buffers[0].data(), k_dev = m_buffers[1].data(), v_dev = m_buffers[2].data();
  }

  // Params: ints in [1, 64], floats in [0.1, 2].
  for (const auto& pd : sp.params) {
    if (pd.type == spec::Type::Int) {
      params.push_back(static_cast<double>(std::uniform_int_distribution<int>(1, 64)(rng)));
    } else {
      params.push_back(std::uniform_real_distribution<double>(0.1, 2.0)(rng));
    }
  }

  // Tensors: ints small and sorted along the last dimension (like document ids), floats in [0.1, 2].
  for (const auto& td : sp.tensors) {
    int64_t declared = 1, roomy = 1, row = 1;
    for (const auto& d : td.shape) {
      declared *= dim_extent(d, sh, false);
      roomy *= dim_extent(d, sh, true);
    }
    if (!td.shape.empty()) {
      row = std::max<int64_t>(dim_extent(td.shape.back(), sh, false), 1);
    }
    const size_t es = tensor_elem_size(td.dtype);
    std::vector<unsigned char> bytes(size_t(std::max<int64_t>(roomy, 1)) * es);
    const int64_t count = std::max<int64_t>(roomy, 1);
    const int range = std::uniform_int_distribution<int>(1, 5)(rng);
    std::vector<double> values(count);
    for (auto& x : values) {
      x = td.dtype == spec::TensorDType::Float32 ? std::uniform_real_distribution<double>(0.1, 2.0)(rng)
                                                : std::uniform_int_distribution<int>(0, range - 1)(rng);
    }
    if (td.dtype != spec::TensorDType::Float32) {
      for (int64_t start = 0; start < count;) {  // each declared row, then the spare tail
        const int64_t end = start < declared ? std::min(start + row, declared) : count;
        std::sort(values.begin() + start, values.begin() + end);
        start = end;
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      if (td.dtype == spec::TensorDType::Int32) {
        const int32_t x = static_cast<int32_t>(values[i]);
        std::memcpy(&bytes[i * es], &x, es);
      } else if (td.dtype == spec::TensorDType::Int64) {
        const int64_t x = static_cast<int64_t>(values[i]);
        std::memcpy(&bytes[i * es], &x, es);
      } else {
        const float x = static_cast<float>(values[i]);
        std::memcpy(&bytes[i * es], &x, es);
      }
    }
    DeviceBuffer& buf = buffer(bytes.size());
    buf.upload(bytes.data(), bytes.size());
    tensor_dev_ptrs.push_back(buf.data());
    m_uploaded.push_back(bytes);
    tensor_host.push_back(std::move(bytes));
  }
}

std::string Problem::describe_params() const {
  std::ostringstream os;
  for (size_t i = 0; i < params.size(); ++i) {
    os << (i ? " " : "") << spec->params[i].name << "=" << params[i];
  }
  for (size_t i = 0; i < spec->tensors.size(); ++i) {
    os << (os.tellp() > 0 ? " " : "") << spec->tensors[i].name << "=[random sorted]";
  }
  return os.str();
}

bool Problem::inputs_unchanged(std::string& what, cudaStream_t stream) const {
  const size_t n_qkv = shape.layout == Layout::Packed ? 1 : 3;
  auto name = [&](size_t i) {
    if (i < n_qkv) {
      return std::string(n_qkv == 1 ? "packed q/k/v buffer" : (i == 0 ? "q" : i == 1 ? "k" : "v"));
    }
    return "tensor " + spec->tensors[i - n_qkv].name;
  };
  const size_t device_summed = m_device_sums.size();  // the first buffers, when device-filled
  for (size_t i = 0; i < device_summed; ++i) {
    device_checksum(m_buffers[i].data(), m_buffers[i].bytes() - (m_buffers[i].bytes() % 2),
                    reinterpret_cast<unsigned long long*>(m_sum.data()), stream);
    KG_CUDA(cudaGetLastError());
    unsigned long long sum = 0;
    KG_CUDA(cudaMemcpyAsync(&sum, m_sum.data(), sizeof sum, cudaMemcpyDeviceToHost, stream));
    KG_CUDA(cudaStreamSynchronize(stream));
    if (sum != m_device_sums[i]) {
      what = name(i) + " was modified (device checksum changed)";
      return false;
    }
  }
  for (size_t i = device_summed; i < m_buffers.size(); ++i) {
    const auto& uploaded = m_uploaded[i - device_summed];
    std::vector<unsigned char> now(uploaded.size());
    KG_CUDA(cudaMemcpyAsync(now.data(), m_buffers[i].data(), now.size(), cudaMemcpyDeviceToHost, stream));
    KG_CUDA(cudaStreamSynchronize(stream));
    if (checksum(now.data(), now.size()) != checksum(uploaded.data(), uploaded.size())) {
      size_t first = 0;
      while (first < now.size() && now[first] == uploaded[first]) {
        ++first;
      }
      std::ostringstream os;
      os << name(i) << " was modified (first changed byte at offset " << first << ")";
      what = os.str();
      return false;
    }
  }
  return true;
}

// ---- Outputs ----------------------------------------------------------------------------------

uint16_t Outputs::poison_bits(spec::DType dtype) { return dtype == spec::DType::BF16 ? 0xFFC1 : 0xFE01; }
uint32_t Outputs::lse_poison_bits() { return 0xFFC00001u; }

Outputs::Outputs(const Problem& p, SharedArena* arena) : m_p(&p) {
  const auto& s = p.shape;
  const int D = p.head_dim;
  if (s.layout == Layout::BHSD) {
    set_strides(out_stride, Layout::BHSD, s.seqlen_q, s.heads_q, D, 0);
    out_span = size_t(s.batch) * s.heads_q * s.seqlen_q * D;
  } else {  // [B, Sq, Hq, D + 8]
    const int64_t hs = D + 8;
    out_stride[0] = int64_t(s.seqlen_q) * s.heads_q * hs, out_stride[1] = hs, out_stride[2] = int64_t(s.heads_q) * hs;
    out_span = size_t(s.batch) * s.seqlen_q * s.heads_q * hs;
  }
  out_guard = 2048;  // 4 KiB of 2-byte elements on each side
  m_out = DeviceBuffer((out_span + 2 * out_guard) * 2, arena);
  out_dev = m_out.data() + out_guard * 2;
  if (s.lse) {
    lse_span = size_t(s.batch) * s.heads_q * s.seqlen_q;
    lse_guard = 1024;
    m_lse = DeviceBuffer((lse_span + 2 * lse_guard) * 4, arena);
    lse_dev = reinterpret_cast<float*>(m_lse.data()) + lse_guard;
  }
  poison();
}

void Outputs::poison_async(cudaStream_t stream) {
  device_fill_u16(m_out.data(), out_span + 2 * out_guard, poison_bits(m_p->spec->dtype), stream);
  KG_CUDA(cudaGetLastError());
  if (lse_dev) {
    device_fill_u32(m_lse.data(), lse_span + 2 * lse_guard, lse_poison_bits(), stream);
    KG_CUDA(cudaGetLastError());
  }
}

void Outputs::poison(cudaStream_t stream) {
  poison_async(stream);
  KG_CUDA(cudaStreamSynchronize(stream));
}

void Outputs::download(cudaStream_t stream) {
  out_all.resize(out_span + 2 * out_guard);
  KG_CUDA(cudaMemcpyAsync(out_all.data(), m_out.data(), out_all.size() * 2, cudaMemcpyDeviceToHost, stream));
  if (lse_dev) {
    lse_all.resize(lse_span + 2 * lse_guard);
    KG_CUDA(cudaMemcpyAsync(lse_all.data(), m_lse.data(), lse_all.size() * 4, cudaMemcpyDeviceToHost, stream));
  }
  KG_CUDA(cudaStreamSynchronize(stream));
}

uint16_t Outputs::out_at(int b, int h, int i, int d) const {
  return out_all[out_guard + b * out_stride[0] + h * out_stride[1] + i * out_stride[2] + d];
}

float Outputs::lse_at(int b, int h, int i) const {
  const auto& s = m_p->shape;
  return lse_all[lse_guard + (size_t(b) * s.heads_q + h) * s.seqlen_q + i];
}

KgAttentionArgs make_args(const Problem& p, Outputs& o) {
  KgAttentionArgs a;
  std::memset(&a, 0, sizeof a);
  a.abi_version = KG_ABI_VERSION;
  a.head_dim = p.head_dim;
  a.q = p.q_dev, a.k = p.k_dev, a.v = p.v_dev, a.out = o.out_dev, a.lse = o.lse_dev;
  a.batch = p.shape.batch, a.heads_q = p.shape.heads_q, a.heads_kv = p.shape.heads_kv;
  a.seqlen_q = p.shape.seqlen_q, a.seqlen_kv = p.shape.seqlen_kv;
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = p.q_stride[i], a.k_stride[i] = p.k_stride[i], a.v_stride[i] = p.v_stride[i];
    a.out_stride[i] = o.out_stride[i];
  }
  a.softmax_scale = p.softmax_scale;
  a.params = p.params.empty() ? nullptr : p.params.data();
  a.tensors = p.tensor_dev_ptrs.empty() ? nullptr : p.tensor_dev_ptrs.data();
  return a;
}

cudaError_t run_kernel(ForwardFn fn, const Problem& p, Outputs& o, cudaStream_t stream) {
  const KgAttentionArgs a = make_args(p, o);
  const cudaError_t e = fn(&a, stream);
  if (e != cudaSuccess) {
    return e;
  }
  KG_CUDA(cudaGetLastError());
  KG_CUDA(cudaStreamSynchronize(stream));  // faults inside the kernel surface here
  return cudaSuccess;
}

Expected expected_from(const Problem& p, const Outputs& o) {
  const auto& s = p.shape;
  const int D = p.head_dim;
  Expected e;
  e.out.resize(size_t(s.batch) * s.heads_q * s.seqlen_q * D);
  size_t n = 0;
  for (int b = 0; b < s.batch; ++b) {
    for (int h = 0; h < s.heads_q; ++h) {
      for (int i = 0; i < s.seqlen_q; ++i) {
        for (int d = 0; d < D; ++d) {
          e.out[n++] = bits_to_float(o.out_at(b, h, i, d), p.spec->dtype);
        }
        if (s.lse) {
          e.lse.push_back(o.lse_at(b, h, i));
        }
      }
    }
  }
  return e;
}

// ---- comparison -------------------------------------------------------------------------------

Tolerance default_tolerance(spec::DType dtype) {
  Tolerance t;
  if (dtype == spec::DType::BF16) {
    t.abs = 2e-2, t.rel = 2e-2;
    t.row_rel = 1e-2;
  } else {
    t.abs = 5e-3, t.rel = 5e-3;
    t.row_rel = 2.5e-3;
  }
  t.row_floor = 1e-3;
  t.lse_abs = 1e-3, t.lse_rel = 1e-3;
  return t;
}

CompareReport compare(const Problem& p, const Outputs& got, const Expected& want, const Tolerance& tol,
                      const char* want_name) {
  const auto& s = p.shape;
  const int D = p.head_dim;
  const spec::DType dt = p.spec->dtype;
  CompareReport r;
  std::ostringstream detail;
  int shown = 0;
  struct Worst {
    int b = -1, h = -1, i = -1, d = -1;
    double got = 0, want = 0;
  } worst;

  std::vector<char> is_data(got.out_all.size(), 0);
  size_t n = 0;
  for (int b = 0; b < s.batch; ++b) {
    for (int h = 0; h < s.heads_q; ++h) {
      for (int i = 0; i < s.seqlen_q; ++i) {
        double row_err2 = 0, row_want2 = 0;
        bool row_finite = true;
        for (int d = 0; d < D; ++d, ++n) {
          is_data[got.out_guard + b * got.out_stride[0] + h * got.out_stride[1] + i * got.out_stride[2] + d] = 1;
          const double g = bits_to_float(got.out_at(b, h, i, d), dt);
          const double w = want.out[n];
          double limit = tol.abs + tol.rel * std::fabs(w);
          if (tol.half_ulp) {
            limit += half_ulp(std::max(std::fabs(g), std::fabs(w)), dt);
          }
          const double err = std::fabs(g - w);
          const bool finite = std::isfinite(g) && std::isfinite(w);
          row_finite = row_finite && finite;
          row_err2 += err * err;
          row_want2 += w * w;
          const bool pass = finite && err <= limit;
          const bool poisoned = got.out_at(b, h, i, d) == Outputs::poison_bits(dt);
          if (!std::isfinite(g) && !poisoned) {
            ++r.nonfinite;
          }
          if (!pass) {
            ++r.bad;
            r.unwritten += poisoned;
            if (shown < 5) {
              ++shown;
              detail << "    out[b=" << b << ",h=" << h << ",i=" << i << ",d=" << d << "] = " << g << ", " << want_name
                     << " " << w << (std::isfinite(w) ? "" : " (expectation not finite!)") << ", |diff| " << err
                     << " > allowed " << limit << "\n";
            }
          }
          const double ratio = finite ? (limit > 0 ? err / limit : (err > 0 ? INFINITY : 0)) : INFINITY;
          if (finite && err > r.worst_err) {
            r.worst_err = err;
          }
          if (worst.b < 0 || ratio > r.worst_ratio) {
            r.worst_ratio = ratio;
            worst = {b, h, i, d, g, w};
            r.worst_allowed = limit;
          }
        }
        if (tol.row_rel > 0 && row_finite && D > 0) {
          const double rms_err = std::sqrt(row_err2 / D), rms_want = std::sqrt(row_want2 / D);
          const double allowed = tol.row_rel * std::max(rms_want, tol.row_floor);
          const double ratio = rms_err / allowed;
          if (ratio > 1) {
            ++r.rows_bad;
          }
          if (r.row_worst_b < 0 || ratio > r.row_worst_ratio) {
            r.row_worst_b = b, r.row_worst_h = h, r.row_worst_i = i;
            r.row_worst_ratio = ratio, r.row_worst_rms_err = rms_err, r.row_worst_rms_want = rms_want;
          }
        }
      }
    }
  }
  if (r.rows_bad) {
    detail << "    " << r.rows_bad << " row(s) over the row error bound (rms error <= " << tol.row_rel
           << " x rms of the row, floor " << tol.row_floor << "); worst row (b=" << r.row_worst_b << ",h="
           << r.row_worst_h << ",i=" << r.row_worst_i << "): rms error " << r.row_worst_rms_err << ", rms "
           << want_name << " " << r.row_worst_rms_want << " (" << r.row_worst_ratio << " x allowed)\n";
  }
  // Padding between heads/tokens and the guard zones must still hold the poison.
  const uint16_t pb = Outputs::poison_bits(dt);
  size_t first_clobber = SIZE_MAX;
  for (size_t j = 0; j < got.out_all.size(); ++j) {
    if (!is_data[j] && got.out_all[j] != pb) {
      ++r.clobbered;
      first_clobber = std::min(first_clobber, j);
    }
  }
  if (r.clobbered) {
    const long long off = static_cast<long long>(first_clobber) - static_cast<long long>(got.out_guard);
    detail << "    " << r.clobbered << " out element(s) outside the output were written (padding or guard); first at "
           << "element offset " << off << " from out" << (off < 0 ? " (before the buffer)" : "") << "\n";
  }

  // LSE: -inf exactly where expected, else finite and close.
  size_t lse_bad = 0, lse_clobbered = 0;
  if (s.lse) {
    size_t m = 0;
    int lse_shown = 0;
    for (int b = 0; b < s.batch; ++b) {
      for (int h = 0; h < s.heads_q; ++h) {
        for (int i = 0; i < s.seqlen_q; ++i, ++m) {
          const double g = got.lse_at(b, h, i);
          const double w = want.lse[m];
          bool pass;
          double err = 0;
          if (std::isinf(w) && w < 0) {
            pass = std::isinf(g) && g < 0;
          } else {
            err = std::fabs(g - w);
            pass = std::isfinite(g) && std::isfinite(w) && err <= tol.lse_abs + tol.lse_rel * std::fabs(w);
            if (std::isfinite(err)) {
              r.lse_worst_err = std::max(r.lse_worst_err, err);
            }
          }
          const double lse_allowed = tol.lse_abs + tol.lse_rel * std::fabs(w);
          const double lse_ratio = pass ? (std::isfinite(w) && lse_allowed > 0 ? err / lse_allowed : 0) : INFINITY;
          if (r.lse_worst_b < 0 || lse_ratio > r.lse_worst_ratio) {
            r.lse_worst_ratio = lse_ratio;
            r.lse_worst_b = b, r.lse_worst_h = h, r.lse_worst_i = i;
            r.lse_worst_got = g, r.lse_worst_want = w, r.lse_worst_allowed = lse_allowed;
          }
          if (!pass) {
            ++lse_bad;
            if (lse_shown++ < 5) {
              detail << "    lse[b=" << b << ",h=" << h << ",i=" << i << "] = " << g << ", " << want_name << " " << w
                     << ", allowed |diff| " << tol.lse_abs + tol.lse_rel * std::fabs(w) << "\n";
            }
          }
        }
      }
    }
    const uint32_t lp = Outputs::lse_poison_bits();
    for (size_t j = 0; j < got.lse_all.size(); ++j) {
      uint32_t bits;
      std::memcpy(&bits, &got.lse_all[j], 4);
      if ((j < got.lse_guard || j >= got.lse_guard + got.lse_span) && bits != lp) {
        ++lse_clobbered;
      }
    }
    if (lse_clobbered) {
      detail << "    " << lse_clobbered << " float(s) in the guard zones around lse were written\n";
    }
  }

  r.lse_bad = lse_bad, r.lse_clobbered = lse_clobbered;
  if (worst.b >= 0) {
    r.worst_b = worst.b, r.worst_h = worst.h, r.worst_i = worst.i, r.worst_d = worst.d;
    r.worst_got = worst.got, r.worst_want = worst.want;
  }
  r.ok = r.bad == 0 && r.clobbered == 0 && lse_bad == 0 && lse_clobbered == 0 && r.rows_bad == 0;
  if (!r.ok) {
    std::ostringstream head;
    head << "    " << r.bad << " of " << n << " out elements wrong (" << r.unwritten << " never written, "
         << r.nonfinite << " other NaN/Inf)";
    if (s.lse) {
      head << ", " << lse_bad << " lse values wrong";
    }
    if (worst.b >= 0 && r.bad > 0) {
      head << "; worst at (b=" << worst.b << ",h=" << worst.h << ",i=" << worst.i << ",d=" << worst.d
           << "): got " << worst.got << ", " << want_name << " " << worst.want << ", |diff| "
           << std::fabs(worst.got - worst.want);
    }
    r.detail = head.str() + "\n" + detail.str();
  }
  return r;
}

bool identical(const Outputs& a, const Outputs& b) {
  return a.out_all == b.out_all &&
         (a.lse_all.size() == b.lse_all.size() &&
          std::memcmp(a.lse_all.data(), b.lse_all.data(), a.lse_all.size() * 4) == 0);
}

}  // namespace kg::gpu

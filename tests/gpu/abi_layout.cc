// Exported by the kernel shared libraries (kg_spec_kernels, kg_bench_kernels) so that a ctypes
// mirror of KgAttentionArgs can be checked field by field before any kernel is called.
#include <cstddef>
#include <cstdint>

#include <kernelgen/attention_abi.h>

// Writes up to `n` values: ABI version, sizeof(KgAttentionArgs), then the offset of every field in
// declaration order (abi_version, head_dim, q, k, v, out, lse, batch, heads_q, heads_kv, seqlen_q,
// seqlen_kv, q_stride, k_stride, v_stride, out_stride, softmax_scale, params, tensors).
// Returns how many values describe the layout (19 + 2 = 21), whatever `n` is.
extern "C" int kg_abi_layout(int64_t* out, int n) {
  const int64_t values[] = {
      KG_ABI_VERSION,
      sizeof(KgAttentionArgs),
      offsetof(KgAttentionArgs, abi_version),
      offsetof(KgAttentionArgs, head_dim),
      offsetof(KgAttentionArgs, q),
      offsetof(KgAttentionArgs, k),
      offsetof(KgAttentionArgs, v),
      offsetof(KgAttentionArgs, out),
      offsetof(KgAttentionArgs, lse),
      offsetof(KgAttentionArgs, batch),
      offsetof(KgAttentionArgs, heads_q),
      offsetof(KgAttentionArgs, heads_kv),
      offsetof(KgAttentionArgs, seqlen_q),
      offsetof(KgAttentionArgs, seqlen_kv),
      offsetof(KgAttentionArgs, q_stride),
      offsetof(KgAttentionArgs, k_stride),
      offsetof(KgAttentionArgs, v_stride),
      offsetof(KgAttentionArgs, out_stride),
      offsetof(KgAttentionArgs, softmax_scale),
      offsetof(KgAttentionArgs, params),
      offsetof(KgAttentionArgs, tensors),
  };
  const int count = static_cast<int>(sizeof values / sizeof values[0]);
  for (int i = 0; i < count && i < n; ++i) {
    out[i] = values[i];
  }
  return count;
}

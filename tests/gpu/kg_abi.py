"""ctypes binding of kernelgen/attention_abi.h (ABI version 1) for torch tensors.

Shared by tests/gpu/flex_check.py and bench/attention_bench.py:

    lib = KernelLibrary("libkg_spec_kernels.so")   # checks the struct layout against the library
    fwd = lib.forward("causal")                     # kg_causal_forward
    call(fwd, q, k, v, out, lse, scale)             # q [B, Hq, Sq, D] ... any strides, last dim contiguous
    mods = load_mods("mods/causal.py")              # kg_spec_python ... torch output
    params, tensors = random_runtime(mods, B, Hq, Hkv, Sq, Skv, gen)

Imports torch lazily so that a machine without torch can still import this module and report a skip.
"""
import ctypes
import importlib.util
import os
import sys

ABI_VERSION = 1
SKIP = 77  # exit status CTest reads as "skipped" (SKIP_RETURN_CODE)

CUDA_ERRORS = {0: "cudaSuccess", 1: "cudaErrorInvalidValue", 2: "cudaErrorMemoryAllocation",
               9: "cudaErrorInvalidConfiguration", 98: "cudaErrorInvalidDeviceFunction",
               209: "cudaErrorNoKernelImageForDevice", 400: "cudaErrorInvalidResourceHandle",
               700: "cudaErrorIllegalAddress", 701: "cudaErrorLaunchOutOfResources",
               719: "cudaErrorLaunchFailure"}


def cuda_error_name(code):
    return CUDA_ERRORS.get(code, "cudaError %d" % code)


class KgAttentionArgs(ctypes.Structure):
    """Mirror of KgAttentionArgs; KernelLibrary checks it against kg_abi_layout() of the library."""
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("head_dim", ctypes.c_int32),
        ("q", ctypes.c_void_p),
        ("k", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("out", ctypes.c_void_p),
        ("lse", ctypes.c_void_p),
        ("batch", ctypes.c_int32),
        ("heads_q", ctypes.c_int32),
        ("heads_kv", ctypes.c_int32),
        ("seqlen_q", ctypes.c_int32),
        ("seqlen_kv", ctypes.c_int32),
        ("q_stride", ctypes.c_int64 * 3),
        ("k_stride", ctypes.c_int64 * 3),
        ("v_stride", ctypes.c_int64 * 3),
        ("out_stride", ctypes.c_int64 * 3),
        ("softmax_scale", ctypes.c_float),
        ("params", ctypes.POINTER(ctypes.c_double)),
        ("tensors", ctypes.POINTER(ctypes.c_void_p)),
    ]


ForwardFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(KgAttentionArgs), ctypes.c_void_p)


class KernelLibrary:
    """A shared library of emitted kernels (kg_spec_kernels / kg_bench_kernels)."""

    def __init__(self, path):
        self.path = path
        self.lib = ctypes.CDLL(os.path.abspath(path))
        self.layout = self._check_layout()

    def _check_layout(self):
        try:
            fn = self.lib.kg_abi_layout
        except AttributeError:
            raise RuntimeError("%s does not export kg_abi_layout (tests/gpu/abi_layout.cc)" % self.path)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
        buf = (ctypes.c_int64 * 64)()
        n = fn(buf, 64)
        got = list(buf[:n])
        names = [f[0] for f in KgAttentionArgs._fields_]
        want = [ABI_VERSION, ctypes.sizeof(KgAttentionArgs)] + [getattr(KgAttentionArgs, f).offset for f in names]
        if got != want:
            rows = ["  %-14s library %-5s ctypes %s" % (label, g, w) for label, g, w in
                    zip(["abi_version#", "sizeof"] + names, got + [None] * len(want), want)]
            raise RuntimeError("the ctypes mirror of KgAttentionArgs does not match %s:\n%s" % (self.path, "\n".join(rows)))
        return "ABI %d, sizeof(KgAttentionArgs) = %d, %d field offsets match" % (got[0], got[1], len(names))

    def has(self, name):
        return hasattr(self.lib, "kg_%s_forward" % name)

    def forward(self, name):
        sym = "kg_%s_forward" % name
        try:
            fn = getattr(self.lib, sym)
        except AttributeError:
            raise RuntimeError("%s has no %s" % (self.path, sym))
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.POINTER(KgAttentionArgs), ctypes.c_void_p]
        fn.kg_name = name
        return fn


def make_args(q, k, v, out, lse, scale, params=(), tensors=()):
    """KgAttentionArgs for torch tensors q [B, Hq, Sq, D], k/v [B, Hkv, Skv, D], out like q (any
    strides, last dim contiguous), lse contiguous fp32 [B, Hq, Sq] or None. Returns (args, keepalive):
    keep `keepalive` referenced until the call returns."""
    B, Hq, Sq, D = q.shape
    Hkv, Skv = k.shape[1], k.shape[2]
    for name, t in (("q", q), ("k", k), ("v", v), ("out", out)):
        if t.stride(3) != 1:
            raise ValueError("%s: the last dimension must be contiguous (stride %d)" % (name, t.stride(3)))
    a = KgAttentionArgs()
    a.abi_version = ABI_VERSION
    a.head_dim = D
    a.q, a.k, a.v, a.out = q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()
    a.lse = lse.data_ptr() if lse is not None else None
    a.batch, a.heads_q, a.heads_kv, a.seqlen_q, a.seqlen_kv = B, Hq, Hkv, Sq, Skv
    for field, t in (("q_stride", q), ("k_stride", k), ("v_stride", v), ("out_stride", out)):
        getattr(a, field)[:] = [t.stride(0), t.stride(1), t.stride(2)]
    a.softmax_scale = scale
    keep = []
    if params:
        arr = (ctypes.c_double * len(params))(*[float(x) for x in params])
        a.params = ctypes.cast(arr, ctypes.POINTER(ctypes.c_double))
        keep.append(arr)
    if tensors:
        arr = (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])
        a.tensors = ctypes.cast(arr, ctypes.POINTER(ctypes.c_void_p))
        keep.append(arr)
    return a, keep


def call(fn, q, k, v, out, lse, scale, params=(), tensors=(), stream=None):
    """Enqueues kg_<name>_forward on `stream` (default: torch's current stream). Raises on an error
    return. Does not synchronize."""
    import torch
    a, keep = make_args(q, k, v, out, lse, scale, params, tensors)
    if stream is None:
        stream = torch.cuda.current_stream().cuda_stream
    err = fn(ctypes.byref(a), ctypes.c_void_p(stream))
    if err != 0:
        raise RuntimeError("kg_%s_forward returned %s" % (getattr(fn, "kg_name", "?"), cuda_error_name(err)))
    del keep


def load_mods(path):
    """Imports a torch-flavor mods module written by kg_spec_python."""
    name = "kg_mods_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    # torch.compile (dynamo) looks functions' modules up by name: register it like an import would.
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def dim_size(d, B, Hq, Hkv, Sq, Skv):
    return {"batch": B, "heads_q": Hq, "heads_kv": Hkv, "seq_q": Sq, "seq_kv": Skv}[d] if isinstance(d, str) else d


def random_runtime(mods, B, Hq, Hkv, Sq, Skv, gen, device="cuda", fixed_params=None):
    """Random params (ints in [1, 64], floats in [0.1, 2]; `fixed_params` overrides by name) and index
    tensors (ints small and sorted along the last dim, like document ids; floats in [0.1, 2]), as in
    kg_gpu_tests. Returns (params_dict, params_list, tensors_dict, tensors_list)."""
    import torch
    fixed_params = fixed_params or {}
    params, plist = {}, []
    for name, kind in mods.PARAMS:
        if name in fixed_params:
            x = fixed_params[name]
        elif kind == "int":
            x = int(torch.randint(1, 65, (1,), generator=gen).item())
        else:
            x = 0.1 + 1.9 * torch.rand((1,), generator=gen, dtype=torch.float64).item()
        params[name] = x
        plist.append(float(x))
    tensors, tlist = {}, []
    dt = {"int32": torch.int32, "int64": torch.int64, "float32": torch.float32}
    for name, dtype, shape in mods.TENSORS:
        dims = [dim_size(d, B, Hq, Hkv, Sq, Skv) for d in shape]
        if dtype == "float32":
            t = 0.1 + 1.9 * torch.rand(dims, generator=gen)
        else:
            hi = int(torch.randint(1, 6, (1,), generator=gen).item())
            t = torch.randint(0, hi, dims, generator=gen).sort(dim=-1).values if dims else torch.randint(0, hi, dims, generator=gen)
        t = t.to(dt[dtype]).to(device).contiguous()
        tensors[name] = t
        tlist.append(t)
    return params, plist, tensors, tlist


def torch_dtype(mods):
    import torch
    return torch.bfloat16 if mods.DTYPE == "bf16" else torch.float16


# Template tolerance, as in tests/gpu/kg_gpu_tests.cc: |ours - theirs| <= abs + rel * |theirs|.
TOLERANCE = {"bf16": (2e-2, 2e-2), "fp16": (5e-3, 5e-3)}
LSE_TOLERANCE = (1e-3, 1e-3)


def compare(out, ref, lse=None, ref_lse=None, dtype="bf16", lse_tol=LSE_TOLERANCE):
    """Every element: NaN/Inf never pass; LSE -inf passes exactly where ref has -inf.
    Returns (ok, message, max_abs_err)."""
    import torch
    atol, rtol = TOLERANCE[dtype]
    o, r = out.float(), ref.float()
    err = (o - r).abs()
    limit = atol + rtol * r.abs()
    bad = ~(err <= limit) | ~torch.isfinite(o)
    finite_err = torch.where(torch.isfinite(err), err, torch.zeros_like(err))
    max_err = finite_err.max().item() if err.numel() else 0.0
    msgs = []
    nbad = int(bad.sum().item())
    if nbad:
        ratio = torch.where(torch.isfinite(err) & torch.isfinite(o), err / limit, torch.full_like(err, float("inf")))
        idx = int(ratio.flatten().argmax().item())
        loc = []
        for s in reversed(out.shape):
            loc.append(idx % s)
            idx //= s
        b, h, i, d = reversed(loc)
        msgs.append("%d of %d out elements wrong (%d NaN/Inf); worst at (b=%d,h=%d,i=%d,d=%d): ours %r, ref %r"
                    % (nbad, out.numel(), int((~torch.isfinite(o)).sum().item()), b, h, i, d,
                       o[b, h, i, d].item(), r[b, h, i, d].item()))
    if lse is not None and ref_lse is not None:
        la, lr = lse_tol
        ref_ninf = torch.isneginf(ref_lse)
        lerr = (lse - ref_lse.float()).abs()
        lbad = torch.where(ref_ninf, ~torch.isneginf(lse), ~(lerr <= la + lr * ref_lse.float().abs()) | ~torch.isfinite(lse))
        nl = int(lbad.sum().item())
        if nl:
            idx = int(lbad.flatten().nonzero()[0].item())
            loc = []
            for s in reversed(lse.shape):
                loc.append(idx % s)
                idx //= s
            b, h, i = reversed(loc)
            msgs.append("%d of %d lse values wrong; first at (b=%d,h=%d,i=%d): ours %r, ref %r"
                        % (nl, lse.numel(), b, h, i, lse[b, h, i].item(), ref_lse[b, h, i].item()))
    return (not msgs), "; ".join(msgs), max_err

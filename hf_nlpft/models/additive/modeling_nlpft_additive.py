"""Multi-head additive (Bahdanau-style) self-attention models: base model and task heads.

Per head h the score of query i for key j is `v_hᵀ tanh(W_q x_i + W_k x_j)`. Unlike dot-product attention this
cannot be written as one matmul: the tanh sits between the query/key sum and the reduction over the head width,
so a plain implementation materialises a B×H×N×N×d tensor. Two implementations avoid that:

- `FusedAdditiveScoreFunction` (CPU): a small C kernel, compiled on first use with the system C compiler, loops over
  (query, key) pairs and keeps the head-width reduction in registers. It uses tanh(a + b) = 1 - 2 / (1 + e^2a e^2b),
  so the B×H×N×N×d inner loop is a multiply-add and a division instead of a tanh; the exponentials are taken once
  per query and key.
- `AdditiveScoreFunction` (any device): scores a chunk of queries at a time with tensor ops and recomputes the tanh
  in backward (flash-attention style).

One-model-one-file: this module imports only the standard library, torch, transformers and its sibling config
(the kernel's C source is a string in this file), so it is copied verbatim next to config.json and loads as Hub
remote code.
"""

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import logging

from .configuration_nlpft_additive import AdditiveAttentionConfig

logger = logging.get_logger(__name__)

# Extra forward kwargs the token-level losses understand. `num_items_in_batch` comes from Trainer and makes the loss
# a sum over the whole accumulated batch divided by its label count (correct gradient accumulation). Everything
# else in **kwargs (generate()'s `cache`/`use_cache`, tokenizer `token_type_ids`, ...) is accepted and ignored.
_LOSS_KWARGS = ("num_items_in_batch", "ignore_index", "shift_labels")


# ---------------------------------------------------------------------------------------------------------------
# Additive scores
# ---------------------------------------------------------------------------------------------------------------


def _key_stop(chunk_end: int, num_keys: int, causal: bool) -> int:
    """Keys a query chunk needs: under a causal mask, none beyond the chunk's last query."""
    return min(chunk_end, num_keys) if causal else num_keys


class AdditiveScoreFunction(torch.autograd.Function):
    """`scores[b,h,i,j] = v[h] · tanh(q[b,h,i] + k[b,h,j])` without keeping the B×H×N×N×d tanh tensor.

    Forward scores `chunk_size` queries at a time and saves only q, k, v. Backward recomputes each chunk's tanh T
    and, with U = dS·(1 - T²), accumulates dq_i = v ⊙ Σ_j U_ij, dk_j = v ⊙ Σ_i U_ij and dv = Σ dS·T.
    Peak extra memory is one B×H×chunk×N×d buffer. With `causal=True` scores of keys after a chunk's last query
    are left at 0 (never computed) and receive no gradient; the caller must mask them.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int, causal: bool):
        batch, heads, num_queries, head_dim = q.shape
        num_keys = k.shape[2]
        scores = q.new_zeros(batch, heads, num_queries, num_keys)
        v_column = v.reshape(1, heads, head_dim, 1)
        for start in range(0, num_queries, chunk_size):
            end = min(start + chunk_size, num_queries)
            stop = _key_stop(end, num_keys, causal)
            tanh_chunk = _tanh_of_sum(q[:, :, start:end], k[:, :, :stop])
            # (B,H,c*K,d) @ (1,H,d,1): one batched matmul reduces the head width for the whole chunk.
            chunk_scores = tanh_chunk.view(batch, heads, -1, head_dim) @ v_column
            scores[:, :, start:end, :stop] = chunk_scores.view(batch, heads, end - start, stop)
            del tanh_chunk  # free the chunk buffer before the next one is allocated
        ctx.save_for_backward(q, k, v)
        ctx.chunk_size = chunk_size
        ctx.causal = causal
        return scores

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_scores: torch.Tensor):
        q, k, v = ctx.saved_tensors
        batch, heads, num_queries, head_dim = q.shape
        num_keys = k.shape[2]
        # dk and dv sum over many chunks: accumulate in float32 so bf16 inputs do not lose the small terms.
        accumulate_dtype = torch.promote_types(q.dtype, torch.float32)
        grad_q = torch.empty_like(q)
        grad_k = torch.zeros(k.shape, dtype=accumulate_dtype, device=k.device)
        grad_v = torch.zeros(v.shape, dtype=accumulate_dtype, device=v.device)
        v_scale = v.view(1, heads, 1, head_dim)
        for start in range(0, num_queries, ctx.chunk_size):
            end = min(start + ctx.chunk_size, num_queries)
            stop = _key_stop(end, num_keys, ctx.causal)
            chunk_grad = grad_scores[:, :, start:end, :stop].to(q.dtype).contiguous()
            tanh_chunk = _tanh_of_sum(q[:, :, start:end], k[:, :, :stop])
            # dv: (B,H,1,c*K) @ (B,H,c*K,d), summed over the batch.
            grad_v += (chunk_grad.view(batch, heads, 1, -1) @ tanh_chunk.view(batch, heads, -1, head_dim)).sum(0).squeeze(1)
            # Reuse the buffer in place: T -> dS·(1 - T²), the pre-activation gradient without the factor v.
            pre_grad = tanh_chunk.square_().neg_().add_(1).mul_(chunk_grad.unsqueeze(-1))
            grad_q[:, :, start:end] = pre_grad.sum(3) * v_scale
            grad_k[:, :, :stop] += pre_grad.sum(2) * v_scale
            del tanh_chunk, pre_grad  # free the chunk buffer before the next one is allocated
        return grad_q, grad_k.to(k.dtype), grad_v.to(v.dtype), None, None


def _tanh_of_sum(q_chunk: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """tanh(q_i + k_j) for a chunk of queries against all given keys: (B,H,c,d), (B,H,K,d) -> (B,H,c,K,d)."""
    return (q_chunk.unsqueeze(3) + k.unsqueeze(2)).tanh_()


# ---------------------------------------------------------------------------------------------------------------
# Fused CPU kernel
# ---------------------------------------------------------------------------------------------------------------

# With A = exp(2q) and B = exp(2k): tanh(q + k) = 1 - 2r, r = 1 / (1 + A·B), and 1 - tanh² = 4r(1 - r).
# Overflow is harmless as long as A and B themselves are finite and non-zero: A·B = inf gives r = 0 (tanh = 1),
# A·B = 0 gives r = 1 (tanh = -1). `_FUSED_MAX_ABS` keeps q and k inside that range; larger values take the
# recompute path.
_FUSED_KERNEL_SOURCE = r"""
#include <stdint.h>
#include <string.h>

#define DEFINE_KERNELS(T, SUFFIX)                                                                              \
/* scores[bh,i,j] = sum_e v[h,e] tanh(q + k) = sum(v) - 2 sum_e v[h,e] / (1 + A[bh,i,e] B[bh,j,e]) */          \
void additive_scores_forward_##SUFFIX(const T* A, const T* B, const T* v, T* scores, int64_t BH, int64_t H,    \
                                      int64_t Nq, int64_t Nk, int64_t d, int causal, int threads) {            \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(threads)")                                     \
    for (int64_t row = 0; row < BH * Nq; ++row) {                                                             \
        const int64_t bh = row / Nq, i = row % Nq;                                                            \
        const T* a = A + row * d;                                                                             \
        const T* vh = v + (bh % H) * d;                                                                       \
        T* out = scores + row * Nk;                                                                           \
        T sum_v = 0;                                                                                          \
        for (int64_t e = 0; e < d; ++e) sum_v += vh[e];                                                       \
        const int64_t stop = causal && i + 1 < Nk ? i + 1 : Nk;                                               \
        for (int64_t j = 0; j < stop; ++j) {                                                                  \
            const T* b = B + (bh * Nk + j) * d;                                                               \
            T acc = 0;                                                                                        \
            _Pragma("omp simd reduction(+:acc)")                                                              \
            for (int64_t e = 0; e < d; ++e) acc += vh[e] / ((T)1 + a[e] * b[e]);                              \
            out[j] = sum_v - (T)2 * acc;                                                                      \
        }                                                                                                     \
        for (int64_t j = stop; j < Nk; ++j) out[j] = 0;                                                       \
    }                                                                                                         \
}                                                                                                             \
/* With g = dS: dq = 4v sum_j g r(1-r), dk = 4v sum_i g r(1-r), dv (per bh, summed over b by the caller) =    \
   sum g - 2 sum g r. Zero gradients (masked scores) are skipped. */                                           \
void additive_scores_backward_##SUFFIX(const T* A, const T* B, const T* v, const T* grad, T* dq, T* dk,        \
                                       T* dv_per_bh, int64_t BH, int64_t H, int64_t Nq, int64_t Nk, int64_t d, \
                                       int causal, int threads) {                                              \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(threads)")                                     \
    for (int64_t bh = 0; bh < BH; ++bh) {                                                                     \
        const T* vh = v + (bh % H) * d;                                                                       \
        T* dk_bh = dk + bh * Nk * d;                                                                          \
        T* dv = dv_per_bh + bh * d;                                                                           \
        memset(dk_bh, 0, sizeof(T) * Nk * d);                                                                 \
        memset(dv, 0, sizeof(T) * d);                                                                         \
        T grad_sum = 0;                                                                                       \
        for (int64_t i = 0; i < Nq; ++i) {                                                                    \
            const T* a = A + (bh * Nq + i) * d;                                                               \
            const T* grad_row = grad + (bh * Nq + i) * Nk;                                                    \
            T* dq_i = dq + (bh * Nq + i) * d;                                                                 \
            memset(dq_i, 0, sizeof(T) * d);                                                                   \
            const int64_t stop = causal && i + 1 < Nk ? i + 1 : Nk;                                           \
            for (int64_t j = 0; j < stop; ++j) {                                                              \
                const T g = grad_row[j];                                                                      \
                if (g == 0) continue;                                                                         \
                grad_sum += g;                                                                                \
                const T* b = B + (bh * Nk + j) * d;                                                           \
                T* dk_j = dk_bh + j * d;                                                                      \
                _Pragma("omp simd")                                                                           \
                for (int64_t e = 0; e < d; ++e) {                                                             \
                    const T r = (T)1 / ((T)1 + a[e] * b[e]);                                                  \
                    const T gs = g * (r - r * r);                                                             \
                    dq_i[e] += gs;                                                                            \
                    dk_j[e] += gs;                                                                            \
                    dv[e] += g * r;                                                                           \
                }                                                                                             \
            }                                                                                                 \
            for (int64_t e = 0; e < d; ++e) dq_i[e] *= (T)4 * vh[e];                                          \
        }                                                                                                     \
        for (int64_t j = 0; j < Nk; ++j)                                                                      \
            for (int64_t e = 0; e < d; ++e) dk_bh[j * d + e] *= (T)4 * vh[e];                                 \
        for (int64_t e = 0; e < d; ++e) dv[e] = grad_sum - (T)2 * dv[e];                                      \
    }                                                                                                         \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
"""
# -march=native: the library is built on the machine that runs it (the cache key includes the CPU).
# Without OpenMP (Apple clang) the pragmas still vectorise (-fopenmp-simd); the loops then run on one thread.
_FUSED_KERNEL_FLAG_SETS = (
    ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-fopenmp"),
    ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", "-fopenmp-simd"),
)
_FUSED_MAX_ABS = (
    40.0  # |q|, |k| bound for the exponential form (e^80 < float32 max); beyond it: recompute path
)
_FUSED_DTYPES = {torch.float32: "f32", torch.float64: "f64"}
_fused_kernel_unavailable_reason: str | None = None


def _cpu_fingerprint() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return "".join(line for line in cpuinfo if line.startswith(("model name", "flags")))
    except OSError:
        return os.uname().machine if hasattr(os, "uname") else sys.platform


def _kernel_cache_dir() -> str:
    """`HF_NLPFT_KERNEL_CACHE`, else `$XDG_CACHE_HOME/hf_nlpft/kernels` (default `~/.cache/hf_nlpft/kernels`)."""
    if os.environ.get("HF_NLPFT_KERNEL_CACHE"):
        return os.environ["HF_NLPFT_KERNEL_CACHE"]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "hf_nlpft", "kernels")


def _bind_kernel(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    for suffix in _FUSED_DTYPES.values():
        forward = getattr(library, f"additive_scores_forward_{suffix}")
        forward.argtypes = [pointer] * 4 + [size] * 5 + [ctypes.c_int] * 2
        forward.restype = None
        backward = getattr(library, f"additive_scores_backward_{suffix}")
        backward.argtypes = [pointer] * 7 + [size] * 5 + [ctypes.c_int] * 2
        backward.restype = None
    return library


def _build_kernel(compiler: str, flags: tuple[str, ...], target: str) -> None:
    """Compile into a temporary file next to `target`, then rename: concurrent processes never load half a file."""
    directory = os.path.dirname(target)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as build_dir:
        source = os.path.join(build_dir, "additive_scores.c")
        with open(source, "w") as handle:
            handle.write(_FUSED_KERNEL_SOURCE)
        built = os.path.join(build_dir, "additive_scores.so")
        result = subprocess.run(
            [compiler, *flags, source, "-o", built], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip()[-500:] or f"{compiler} exited with {result.returncode}")
        os.replace(built, target)


@functools.cache
def fused_cpu_kernel() -> ctypes.CDLL | None:
    """The compiled fused kernel, built once per machine and cached on disk; None if no C compiler can build it.

    The compiler is `$CC`, else `cc`/`gcc`/`clang` from PATH. Why it is unavailable is kept in
    `fused_kernel_unavailable_reason()`.
    """
    global _fused_kernel_unavailable_reason
    compiler = os.environ.get("CC") or next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)
    if compiler is None:
        _fused_kernel_unavailable_reason = "no C compiler found (set CC or install gcc/clang)"
        return None
    errors = []
    for flags in _FUSED_KERNEL_FLAG_SETS:
        key = hashlib.sha256("\0".join([_FUSED_KERNEL_SOURCE, compiler, *flags, _cpu_fingerprint()]).encode())
        target = os.path.join(_kernel_cache_dir(), f"additive_scores_{key.hexdigest()[:16]}.so")
        try:
            if not os.path.exists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                _build_kernel(compiler, flags, target)
            return _bind_kernel(ctypes.CDLL(target))
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            errors.append(f"{' '.join(flags[-1:])}: {error}")
    _fused_kernel_unavailable_reason = f"building the kernel with {compiler} failed: " + " | ".join(errors)
    logger.warning_once(
        f"Fused additive attention kernel unavailable ({_fused_kernel_unavailable_reason}); "
        "using the recompute implementation."
    )
    return None


def fused_kernel_unavailable_reason() -> str | None:
    """Why `fused_cpu_kernel()` returned None (None while it has not been tried or when it is available)."""
    return _fused_kernel_unavailable_reason


def _fused_kernel_applies(q: torch.Tensor, k: torch.Tensor) -> bool:
    """The fused kernel handles CPU float tensors whose values keep e^(2x) finite and non-zero."""
    if q.device.type != "cpu" or q.numel() == 0 or k.numel() == 0 or not q.is_floating_point():
        return False
    if fused_cpu_kernel() is None:
        return False
    with torch.no_grad():
        return max(q.detach().abs().max().item(), k.detach().abs().max().item()) <= _FUSED_MAX_ABS


class FusedAdditiveScoreFunction(torch.autograd.Function):
    """`AdditiveScoreFunction`'s result from the fused CPU kernel: same scores and gradients, no N×N×d buffers.

    Computes in float32 (float64 for float64 inputs; bf16/fp16 inputs are widened and the results narrowed back).
    Saves e^(2q) and e^(2k) for backward instead of q and k. Multi-threaded over (batch×head, query) in forward
    and over batch×head in backward with torch's intra-op thread count.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool):
        compute_dtype = q.dtype if q.dtype in _FUSED_DTYPES else torch.float32
        suffix = _FUSED_DTYPES[compute_dtype]
        batch, heads, num_queries, head_dim = q.shape
        num_keys = k.shape[2]
        exp_q = (2 * q.to(compute_dtype)).exp_().contiguous()
        exp_k = (2 * k.to(compute_dtype)).exp_().contiguous()
        v_compute = v.to(compute_dtype).contiguous()
        scores = torch.empty(batch, heads, num_queries, num_keys, dtype=compute_dtype)
        getattr(fused_cpu_kernel(), f"additive_scores_forward_{suffix}")(
            exp_q.data_ptr(),
            exp_k.data_ptr(),
            v_compute.data_ptr(),
            scores.data_ptr(),
            batch * heads,
            heads,
            num_queries,
            num_keys,
            head_dim,
            int(causal),
            torch.get_num_threads(),
        )
        ctx.save_for_backward(exp_q, exp_k, v_compute)
        ctx.causal = causal
        ctx.dtypes = (q.dtype, k.dtype, v.dtype)
        return scores.to(q.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_scores: torch.Tensor):
        exp_q, exp_k, v = ctx.saved_tensors
        batch, heads, num_queries, head_dim = exp_q.shape
        num_keys = exp_k.shape[2]
        grad_scores = grad_scores.to(exp_q.dtype).contiguous()
        grad_q, grad_k = torch.empty_like(exp_q), torch.empty_like(exp_k)
        grad_v_per_bh = exp_q.new_empty(batch, heads, head_dim)
        getattr(fused_cpu_kernel(), f"additive_scores_backward_{_FUSED_DTYPES[exp_q.dtype]}")(
            exp_q.data_ptr(),
            exp_k.data_ptr(),
            v.data_ptr(),
            grad_scores.data_ptr(),
            grad_q.data_ptr(),
            grad_k.data_ptr(),
            grad_v_per_bh.data_ptr(),
            batch * heads,
            heads,
            num_queries,
            num_keys,
            head_dim,
            int(ctx.causal),
            torch.get_num_threads(),
        )
        q_dtype, k_dtype, v_dtype = ctx.dtypes
        return grad_q.to(q_dtype), grad_k.to(k_dtype), grad_v_per_bh.sum(0).to(v_dtype), None


def additive_scores(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int,
    causal: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Unmasked additive scores (B,H,N,N) for projected queries/keys (B,H,N,d) and score vectors v (H,d).

    `impl`:
    - "auto": "fused" where it applies (CPU tensors, a C compiler, |q|, |k| <= 40), else "recompute";
    - "fused": the compiled CPU kernel (`FusedAdditiveScoreFunction`); an error if it cannot be built or the
      tensors are not on the CPU; values beyond its range still take "recompute";
    - "recompute": `AdditiveScoreFunction`, chunked tensor ops (any device, memory-lean);
    - "naive": broadcasts the full (B,H,N,N,d) tensor through autograd; the reference.
    With `causal=True` the scores of future keys are 0, not computed; the caller masks them.
    """
    v = v.to(q.dtype)  # under autocast q/k are bf16 while the parameter stays float32
    k = k.to(q.dtype)
    if impl == "fused":
        if q.device.type != "cpu":
            raise ValueError(
                f"additive_attention_impl='fused' runs on the CPU only; got tensors on {q.device}. "
                "Use 'auto' or 'recompute'."
            )
        if fused_cpu_kernel() is None:
            raise RuntimeError(
                f"additive_attention_impl='fused' is unavailable: {fused_kernel_unavailable_reason()}"
            )
    if impl in ("auto", "fused") and _fused_kernel_applies(q, k):
        return FusedAdditiveScoreFunction.apply(q, k, v, causal)
    if impl in ("auto", "fused", "recompute"):
        return AdditiveScoreFunction.apply(q.contiguous(), k.contiguous(), v.contiguous(), chunk_size, causal)
    if impl == "naive":
        return (torch.tanh(q.unsqueeze(3) + k.unsqueeze(2)) @ v.view(1, v.shape[0], 1, v.shape[1], 1)).squeeze(-1)
    raise ValueError(
        f"Unknown additive attention implementation {impl!r}; expected 'auto', 'fused', 'recompute' or 'naive'"
    )


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


class AdditiveAttentionEmbeddings(nn.Module):
    """Token embeddings plus learned absolute position embeddings."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        return self.dropout(inputs_embeds + self.position_embeddings(position_ids))


class AdditiveSelfAttention(nn.Module):
    """Multi-head additive self-attention: softmax_j(v_hᵀ tanh(W_q x_i + W_k x_j)) applied to W_v x_j."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.chunk_size = config.attention_chunk_size
        self.impl = config.additive_attention_impl
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # No key bias: it would only duplicate the query bias inside tanh(W_q x_i + b + W_k x_j).
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.score_vector = nn.Parameter(torch.empty(self.num_heads, self.head_dim))
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, hidden_states: torch.Tensor, allowed: torch.Tensor | None, is_causal: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`allowed` is a boolean mask broadcastable to (B,1,N,N), True where query i may attend to key j."""
        queries = self._split_heads(self.q_proj(hidden_states))
        keys = self._split_heads(self.k_proj(hidden_states))
        values = self._split_heads(self.v_proj(hidden_states))
        scores = additive_scores(queries, keys, self.score_vector, self.chunk_size, is_causal, self.impl)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        if allowed is not None:
            # Rows with no allowed key (pad queries) become all-zero instead of uniform over masked keys.
            probs = probs.masked_fill(~allowed, 0.0)
        probs = probs.to(values.dtype)
        context = self.dropout(probs) @ values
        batch, _, length, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.o_proj(context), probs


class AdditiveAttentionMLP(nn.Module):
    """Position-wise feed-forward layer."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.up_proj(hidden_states)))


class AdditiveAttentionBlock(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = AdditiveSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = AdditiveAttentionMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, allowed: torch.Tensor | None = None, is_causal: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attention_output, probs = self.self_attn(self.attention_norm(hidden_states), allowed, is_causal)
        hidden_states = hidden_states + self.dropout(attention_output)
        hidden_states = hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))
        return hidden_states, probs


class AdditiveAttentionLMHead(nn.Module):
    """dense + activation + LayerNorm, then a vocabulary projection whose weight is tied to the embeddings."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.act(self.dense(hidden_states))))


class AdditiveAttentionPooler(nn.Module):
    """Pools (B,N,D) token states into (B,D) sequence vectors, ignoring padding.

    "attention" is itself additive: s_t = uᵀ tanh(W h_t + b), masked softmax over t, weighted sum of h_t.
    The other modes have no parameters.
    """

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__()
        self.mode = config.classifier_pooling
        if self.mode == "attention":
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)
            self.score_vector = nn.Parameter(torch.empty(config.hidden_size))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        if attention_mask is None:
            attention_mask = hidden_states.new_ones(batch, length, dtype=torch.bool)
        mask = attention_mask.bool()
        if self.mode == "first":
            return hidden_states[:, 0]
        if self.mode == "last":
            # Index of the last real token; works for right and left padding alike.
            positions = torch.arange(length, device=hidden_states.device)
            last = (positions * mask).argmax(dim=-1)
            return hidden_states[torch.arange(batch, device=hidden_states.device), last]
        if self.mode == "mean":
            weights = mask.unsqueeze(-1).to(hidden_states.dtype)
            return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.mode == "max":
            filled = hidden_states.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden_states.dtype).min)
            return filled.max(dim=1).values
        scores = torch.tanh(self.dense(hidden_states)) @ self.score_vector.to(hidden_states.dtype)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(hidden_states.dtype)
        return (weights.unsqueeze(-1) * hidden_states).sum(1)


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class AdditiveAttentionPreTrainedModel(PreTrainedModel):
    config_class = AdditiveAttentionConfig
    config: AdditiveAttentionConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AdditiveAttentionBlock"]

    def _init_weights(self, module: nn.Module):
        """Linear/Embedding/LayerNorm via the library default; the additive score vectors are normal(0, range)."""
        super()._init_weights(module)
        if isinstance(module, AdditiveSelfAttention):
            init.normal_(module.score_vector, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, AdditiveAttentionPooler) and module.mode == "attention":
            init.normal_(module.score_vector, mean=0.0, std=self.config.initializer_range)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding):
        self.base_model.embeddings.word_embeddings = value


class AdditiveAttentionModel(AdditiveAttentionPreTrainedModel):
    """Embeddings, pre-norm additive-attention blocks and a final LayerNorm; returns per-token states.

    Bidirectional unless `forward(..., is_causal=True)`, which the causal LM head passes.
    """

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__(config)
        self.embeddings = AdditiveAttentionEmbeddings(config)
        self.layers = nn.ModuleList(AdditiveAttentionBlock(config) for _ in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        is_causal: bool = False,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        batch, length = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {length} exceeds max_position_embeddings={self.config.max_position_embeddings}; "
                "truncate the input or build the model with a larger max_position_embeddings"
            )
        if position_ids is None:
            position_ids = _default_position_ids(attention_mask, batch, length, device)
        elif int(position_ids.max()) >= self.config.max_position_embeddings:
            raise ValueError(
                f"position_ids reach {int(position_ids.max())} but max_position_embeddings is "
                f"{self.config.max_position_embeddings}"
            )

        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids)
        allowed = _attention_allowed_mask(attention_mask, length, is_causal, device)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            # hidden_states positional: required for reentrant gradient checkpointing.
            hidden_states, probs = layer(hidden_states, allowed, is_causal)
            if output_attentions:
                all_attentions += (probs,)
            if output_hidden_states and index < len(self.layers) - 1:
                all_hidden_states += (hidden_states,)
        hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            # GPT-2 convention: the last entry is the normalised output, equal to last_hidden_state.
            all_hidden_states += (hidden_states,)

        output = BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )
        return output if return_dict else output.to_tuple()


def _default_position_ids(
    attention_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> torch.Tensor:
    """0, 1, 2, ... counted over real tokens, so left-padded (generation) batches get the same positions."""
    if attention_mask is None:
        return torch.arange(length, device=device).expand(batch, length)
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _attention_allowed_mask(
    attention_mask: torch.Tensor | None, length: int, is_causal: bool, device: torch.device
) -> torch.Tensor | None:
    """Boolean mask broadcastable to (B,1,N,N): True where query i may attend to key j."""
    allowed = None
    if attention_mask is not None:
        allowed = attention_mask.bool()[:, None, None, :]
    if is_causal:
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]
        allowed = causal if allowed is None else allowed & causal
    return allowed


def _loss_kwargs(kwargs: dict) -> dict:
    return {key: value for key, value in kwargs.items() if key in _LOSS_KWARGS}


def _classifier_dropout(config: AdditiveAttentionConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class AdditiveAttentionForCausalLM(AdditiveAttentionPreTrainedModel, GenerationMixin):
    """Left-to-right LM: future keys masked. No KV cache; `generate()` re-runs the whole prefix every step."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embeddings.word_embeddings.weight"}

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__(config)
        self.model = AdditiveAttentionModel(config)
        self.lm_head = AdditiveAttentionLMHead(config)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # Additive scores have no reusable key/value cache; generate() must not build a DynamicCache.
        return False

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutput | tuple:
        """`labels` are the input ids (-100 ignored); the shift by one happens inside the loss.

        `logits_to_keep`: logits of the last n positions only (0: all), or of the positions in a 1D index tensor;
        `generate()` passes 1, which spares the vocabulary projection of every prompt position.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            is_causal=True,
        )
        positions = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, positions])
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **_loss_kwargs(kwargs)
            )
        output = CausalLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class AdditiveAttentionForMaskedLM(AdditiveAttentionPreTrainedModel):
    """Bidirectional masked-token prediction with an LM head tied to the input embeddings."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embeddings.word_embeddings.weight"}

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__(config)
        self.model = AdditiveAttentionModel(config)
        self.lm_head = AdditiveAttentionLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        """`labels` hold the original ids at masked positions and -100 elsewhere."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **_loss_kwargs(kwargs)
            )
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class AdditiveAttentionForSequenceClassification(AdditiveAttentionPreTrainedModel):
    """Pools token states per `config.classifier_pooling`, then a linear classifier/regressor.

    The loss follows `config.problem_type` ("regression", "single_label_classification",
    "multi_label_classification"), inferred from num_labels and the label dtype when unset.
    """

    # The sequence loss ignores `num_items_in_batch` for regression/multi-label, so Trainer must not pass it and
    # must divide by the gradient-accumulation steps itself.
    accepts_loss_kwargs = False

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = AdditiveAttentionModel(config)
        self.pooler = AdditiveAttentionPooler(config)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = self.pooler(outputs.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class AdditiveAttentionForTokenClassification(AdditiveAttentionPreTrainedModel):
    """A linear classifier on every token state (bidirectional context)."""

    def __init__(self, config: AdditiveAttentionConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = AdditiveAttentionModel(config)
        if config.use_predicate_indicator:
            self.predicate_embeddings = nn.Embedding(2, config.hidden_size)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        predicate_indicator: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        """`labels` (B,N) with -100 on positions to ignore (padding, non-first sub-words).

        `predicate_indicator` (B,N): 1 on the predicate's tokens, 0 elsewhere (SRL; needs use_predicate_indicator).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if self.config.use_predicate_indicator:
            if predicate_indicator is None:
                raise ValueError("This model marks the predicate: pass predicate_indicator (B, N) of 0/1")
            if inputs_embeds is None:
                inputs_embeds = self.model.embeddings.word_embeddings(input_ids)
                input_ids = None
            inputs_embeds = inputs_embeds + self.predicate_embeddings(predicate_indicator)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config, **_loss_kwargs(kwargs))
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


# save_pretrained copies this file and its config next to config.json for trust_remote_code loading.
AdditiveAttentionModel.register_for_auto_class("AutoModel")
AdditiveAttentionForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AdditiveAttentionForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
AdditiveAttentionForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
AdditiveAttentionForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")

__all__ = [
    "AdditiveAttentionPreTrainedModel",
    "AdditiveAttentionModel",
    "AdditiveAttentionForCausalLM",
    "AdditiveAttentionForMaskedLM",
    "AdditiveAttentionForSequenceClassification",
    "AdditiveAttentionForTokenClassification",
]

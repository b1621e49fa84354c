"""One SAE optimisation step and what it runs on: the optimiser and the CPU allocator setting.

:func:`train_step` is the step ``train_sae`` runs (and the benchmarks time): loss, sparse
backward, the decoder-gradient projection, Adam, decoder renormalisation.
"""

from __future__ import annotations

import ctypes

import torch

from protsae.sae.model import AUXK_COEFFICIENT, SAEOutput, TopKSAE


class _StorageOrderAdam(torch.optim.Adam):
    """Adam that hands transposed parameters to its kernel in their storage order.

    ``TopKSAE.W_enc`` is the transpose of a contiguous tensor, and so are its gradient and
    Adam's moments (created with the parameter's strides). The fused CPU kernel copies a
    non-contiguous tensor to contiguous memory and back, which made the step over W_enc about
    4x slower than over W_dec. Adam is elementwise, so updating the contiguous transposes of
    all four tensors is the same update.
    """

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, *rest):  # type: ignore[no-untyped-def]
        has_complex = super()._init_group(group, params, grads, exp_avgs, exp_avg_sqs, *rest)
        for i, tensors in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, strict=True)):
            if all(t.dim() == 2 and t.t().is_contiguous() for t in tensors) and not all(
                t.is_contiguous() for t in tensors
            ):
                params[i], grads[i], exp_avgs[i], exp_avg_sqs[i] = (t.t() for t in tensors)
        return has_complex


def make_optimizer(sae: TopKSAE, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel where this torch has one for the device (about 3x faster on CPU),
    over every parameter in its storage order (:class:`_StorageOrderAdam`)."""
    try:
        return _StorageOrderAdam(sae.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(sae.parameters(), lr=lr)


# glibc's mallopt parameters (malloc.h) and the value keep_freed_memory sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed blocks up to 1 GiB instead of returning it.

    glibc serves big blocks with mmap and hands them back on free, so every step's fresh
    gradients, top-k candidates and temporaries (tens of MB at width 16384) fault their pages
    in again: about 25k page faults and 5-15% of a CPU training step. With both thresholds at
    1 GiB such blocks come from (and return to) the heap, which the next step reuses. Process-
    wide and permanent, so only the training entry point calls it. False where the C library
    is not glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(
            libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
            and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        )
    except (OSError, AttributeError):
        return False


def train_step(
    sae: TopKSAE,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    dead_mask: torch.Tensor | None,
    lr: float,
    autocast_dtype: torch.dtype | None = None,
) -> SAEOutput:
    """One optimisation step on batch ``x``, keeping the decoder rows unit-norm.

    ``autocast_dtype`` (e.g. ``torch.bfloat16`` on a GPU) runs the forward pass under
    autocast: the encoder matmul and top-k in that dtype, decoder and losses in float32.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = sae(x, dead_mask=dead_mask)
    loss = out.fvu + AUXK_COEFFICIENT * out.auxk_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_gradient_parallel_to_decoder()
    optimizer.step()
    sae.set_decoder_norm_to_unit()
    return SAEOutput(*(tensor.detach() for tensor in out))

"""The TopK sparse autoencoder: z = TopK(W_enc^T (x - b_dec) + b_enc), x_hat = W_dec^T z + b_dec.

Everything after the dense encoder matmul works on (top values, top indices) of shape
[N, k]: the decoder is an ``embedding_bag`` gather-sum over the k selected rows, and the
encoder's backward pass (:class:`_SparseTopKEncoder`) accumulates gradients only into the
columns of ``W_enc`` that were selected. A dense [N, width] latent matrix is never formed
in training, which is what makes CPU training several times faster than a plain-autograd
implementation (see benchmarks/bench_sae.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from protsae.conventions import FAIR_ESM, check_convention

NORMALIZATIONS: tuple[str, ...] = ("none", "token_standardize")

# InterProt's per-token standardization divides by (std + eps) with this eps.
STANDARDIZE_EPS = 1e-5
# AuxK loss weight (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").
AUXK_COEFFICIENT = 1.0 / 32.0
_TINY = torch.finfo(torch.float32).tiny  # guards a division by a zero variance


@dataclass
class SAEConfig:
    """Shape, sparsity and provenance of an SAE; round-trips through ``sae.json``.

    ``normalize``: ``"none"`` encodes the activations as they are; ``"token_standardize"``
    is InterProt's convention (each token minus its mean, divided by its std + 1e-5 before
    encoding, undone after decoding). ``auxk`` None means d_model // 2.
    ``decoder_unit_norm`` is False for imported weights whose decoder rows were never
    normalized (they are kept as published). ``activation_convention`` names the ESM-2 vectors
    the SAE was trained on (:mod:`protsae.conventions`): ``"fair-esm"`` for protsae's own,
    ``"interprot"`` for imported InterProt SAEs; every stage that encodes with the SAE computes
    its activations that way.
    """

    d_model: int
    width: int
    k: int
    normalize: str = "none"
    auxk: int | None = None
    dead_tokens: int = 10_000_000
    decoder_unit_norm: bool = True
    activation_convention: str = FAIR_ESM
    model: str = ""
    layer: int = -1
    training: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    esm: dict[str, Any] = field(default_factory=dict)
    """The ESM-2 it was trained on (``protsae.esm.checkpoint.model_record``); empty when unknown."""

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if not 0 < self.k <= self.width:
            raise ValueError(f"k must be in 1..width ({self.width}), got {self.k}")
        if self.d_model <= 0:
            raise ValueError(f"d_model must be positive, got {self.d_model}")
        check_convention(self.activation_convention)

    @property
    def k_aux(self) -> int:
        """Number of dead latents the AuxK loss may use per token."""
        return self.auxk if self.auxk is not None else self.d_model // 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Build from a dict; unknown keys (from newer writers) are ignored."""
        names = {f.name for f in fields(cls)}
        missing = {"d_model", "width", "k"} - data.keys()
        if missing:
            raise ValueError(f"SAE config lacks required keys {sorted(missing)}")
        return cls(**{key: value for key, value in data.items() if key in names})


class TopK(NamedTuple):
    """The k active latents per token: values after ReLU (zeros possible) and their indices."""

    values: torch.Tensor  # [N, k]
    indices: torch.Tensor  # [N, k] int64


class SAEOutput(NamedTuple):
    """What a forward pass returns; losses are scalars."""

    x_hat: torch.Tensor
    values: torch.Tensor
    indices: torch.Tensor
    mse: torch.Tensor
    fvu: torch.Tensor
    auxk_loss: torch.Tensor


def _topk_groups(width: int, k: int) -> int | None:
    """How many column groups :func:`topk_rows` splits ``width`` into, or None for a plain
    ``torch.topk``: the divisor G of ``width`` (at least 2k, groups of at least 4 columns)
    that minimises the two selections' work, G + k * width / G, when that is under half of
    one selection over the whole row."""
    best = None
    for groups in range(2 * k, width // 4 + 1):
        if width % groups == 0:
            work = groups + k * (width // groups)
            if best is None or work < best[0]:
                best = (work, groups)
    return best[1] if best is not None and best[0] < width // 2 else None


def topk_rows(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries of each row of ``pre`` [N, width]: (values, column indices), in
    no particular order. The values are exactly ``pre.topk(k, dim=1)``'s; indices differ only
    between tied values.

    A selection over all ``width`` columns is slow on CPU (per row it builds and partially
    sorts ``width`` (value, index) pairs). Instead the columns are split into G strided groups
    ({g, g + G, g + 2G, ...}); one vectorised pass takes each group's maximum, a top-k over
    the G maxima picks k groups, and a top-k over those groups' k * width / G entries gives
    the answer. Exact: the k picked groups hold k entries >= the k-th largest group maximum,
    and every entry of an unpicked group is <= its maximum <= that same value.
    """
    n, width = pre.shape
    groups = _topk_groups(width, k) if pre.device.type == "cpu" else None
    if groups is None or not pre.is_contiguous():
        top = pre.topk(k, dim=1, sorted=False)
        return top.values, top.indices
    size = width // groups
    blocks = pre.view(n, size, groups)  # blocks[:, s, g] is column g + s * groups
    picked = blocks.amax(dim=1).topk(k, dim=1, sorted=False).indices  # [n, k] groups
    # An expanded (never materialised) index: candidates[:, s, j] = blocks[:, s, picked[:, j]].
    candidates = blocks.gather(2, picked.unsqueeze(1).expand(n, size, k))
    top = candidates.view(n, size * k).topk(k, dim=1, sorted=False)
    return top.values, picked.gather(1, top.indices % k) + (top.indices // k) * groups


def sum_over_latents(
    indices: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor, width: int
) -> torch.Tensor:
    """out[i] = sum over (n, j) with indices[n, j] == i of weights[n, j] * rows[n]: [width, d].

    The weight gradient of a sparse gather-sum (both the decoder's and the encoder's). It is
    computed as a forward ``embedding_bag`` over the transposed bags (one bag per latent,
    holding the tokens that selected it, found by one sort of the N*k indices), which on CPU
    is several times faster than ``embedding_bag``'s own backward; latents no token selected
    get zero rows.
    """
    flat = indices.reshape(-1)
    order = flat.argsort()
    counts = torch.bincount(flat, minlength=width)
    offsets = counts.cumsum(0) - counts
    tokens = torch.div(order, indices.shape[1], rounding_mode="floor")
    return F.embedding_bag(
        tokens,
        rows,
        offsets,
        mode="sum",
        per_sample_weights=weights.reshape(-1)[order].to(rows.dtype),
    )


class _SparseDecode(torch.autograd.Function):
    """sum_j values[n, j] * W_dec[indices[n, j]] and its gradients, all over selected rows."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(
        ctx: Any, values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor
    ) -> torch.Tensor:
        weights = values.to(W_dec.dtype)
        ctx.save_for_backward(weights, indices)
        ctx.width = W_dec.shape[0]
        # The value gradient, d/d values[n, j] = <grad_out[n], W_dec[indices[n, j]]>, is the
        # per-sample-weight gradient of this gather-sum: record that one derivative now (W_dec
        # detached) rather than run the gather a second time in backward.
        with torch.enable_grad():
            ctx.leaf = weights.detach().requires_grad_(ctx.needs_input_grad[0])
            ctx.out = F.embedding_bag(
                indices, W_dec.detach(), per_sample_weights=ctx.leaf, mode="sum"
            )
        return ctx.out.detach()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weights, indices = ctx.saved_tensors
        grad_values = grad_W_dec = None
        if ctx.needs_input_grad[0]:
            (grad_values,) = torch.autograd.grad(ctx.out, ctx.leaf, grad_out)
        if ctx.needs_input_grad[2]:
            grad_W_dec = sum_over_latents(indices, weights, grad_out, ctx.width)
        del ctx.out, ctx.leaf
        return grad_values, None, grad_W_dec


def sparse_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_j values[n, j] * W_dec[indices[n, j]] without a dense [N, width] matrix.

    The backward is sparse too: the value gradient is one d-dimensional dot product per
    (token, j), and the weight gradient (:func:`sum_over_latents`) touches only selected rows.
    """
    return _SparseDecode.apply(values, indices, W_dec)


class _SparseTopKEncoder(torch.autograd.Function):
    """Centring, encoder matmul, top-k and ReLU, with a backward over the selected latents only.

    Optionally also selects the top ``k_aux`` pre-activations among dead latents (AuxK);
    their gradients flow back through the same sparse path.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(
        ctx: Any,
        x: torch.Tensor,
        b_dec: torch.Tensor,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        sizes: tuple[int, int],
        dead_mask: torch.Tensor | None,
        workspace: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        k, k_aux = sizes
        x_c = x - b_dec
        pre = torch.addmm(b_enc.to(x_c.dtype), x_c, W_enc.to(x_c.dtype), out=workspace)
        top_values, indices = topk_rows(pre, k)
        values = top_values.relu()
        if dead_mask is not None and k_aux > 0:
            aux_top, aux_indices = topk_rows(pre.masked_fill_(~dead_mask, -math.inf), k_aux)
            aux_values = aux_top.relu()
        else:
            aux_values = values.new_zeros(values.shape[0], 0)
            aux_indices = indices.new_zeros(indices.shape[0], 0)
        ctx.save_for_backward(x_c, W_enc, values, indices, aux_values, aux_indices)
        ctx.mark_non_differentiable(indices, aux_indices)
        return values, indices, aux_values, aux_indices

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(
        ctx: Any,
        grad_values: torch.Tensor | None,
        _grad_indices: None,
        grad_aux_values: torch.Tensor | None,
        _grad_aux_indices: None,
    ) -> tuple[torch.Tensor | None, ...]:
        x_c, W_enc, values, indices, aux_values, aux_indices = ctx.saved_tensors
        if grad_values is None:
            grad_values = torch.zeros_like(values)
        if grad_aux_values is None:
            grad_aux_values = torch.zeros_like(aux_values)
        # ReLU gradient: latents selected with a non-positive pre-activation get none.
        grads = [grad_values * (values > 0), grad_aux_values * (aux_values > 0)]
        grad_pre = torch.cat(grads, dim=1).to(W_enc.dtype)
        selected = torch.cat([indices, aux_indices], dim=1)
        # d(loss)/d b_enc: grad_pre summed per latent.
        per_latent = torch.zeros(W_enc.shape[1], dtype=W_enc.dtype, device=W_enc.device)
        per_latent.index_add_(0, selected.reshape(-1), grad_pre.reshape(-1))

        grad_x = grad_b_dec = grad_W_enc = None
        if ctx.needs_input_grad[0]:
            # Rows of W_enc^T are the latents' encoder vectors; d(loss)/dx gathers them
            # weighted by grad_pre. TopKSAE stores W_enc as the transpose of a contiguous
            # [width, d_model] tensor, so this transpose does not copy.
            W_enc_t = W_enc.detach().t().contiguous()
            gathered = F.embedding_bag(selected, W_enc_t, per_sample_weights=grad_pre, mode="sum")
            grad_x = gathered.to(x_c.dtype)
        if ctx.needs_input_grad[1]:
            # x_c = x - b_dec, so d(loss)/d b_dec = -sum over tokens of d(loss)/dx, which is
            # -W_enc @ per_latent: one [d, width] product instead of a gather per token (the
            # training data never needs d(loss)/dx itself). In float32 even under autocast.
            with torch.autocast(W_enc.device.type, enabled=False):
                grad_b_dec = -(W_enc @ per_latent)
        if ctx.needs_input_grad[2]:
            # d(loss)/dW_enc^T sums x_c over the tokens that selected each latent; its strides
            # then match W_enc's.
            grad_W_enc = sum_over_latents(
                selected, grad_pre, x_c.to(W_enc.dtype), W_enc.shape[1]
            ).t()
        grad_b_enc = per_latent if ctx.needs_input_grad[3] else None
        return grad_x, grad_b_dec, grad_W_enc, grad_b_enc, None, None, None


class TopKSAE(nn.Module):
    """TopK SAE with a unit-norm decoder, sparse decode and sparse encoder gradients.

    ``b_dec`` is the pre-encoder bias (``b_pre``): subtracted before encoding and added
    after decoding; it is called ``b_dec`` to match the SAELens tensor names.
    """

    def __init__(self, cfg: SAEConfig, seed: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        W_dec = torch.randn(cfg.width, cfg.d_model, generator=generator)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        # Tied initialisation (Gao et al. 2024): the encoder starts as the decoder's transpose.
        # Stored as the transpose of a contiguous [width, d_model] copy (strides (1, d_model)):
        # the sparse backward gathers and scatters encoder rows of that layout without copying.
        self.W_enc = nn.Parameter(W_dec.clone().t())
        self.b_enc = nn.Parameter(torch.zeros(cfg.width))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_model))
        self._workspace: torch.Tensor | None = None

    # -- input normalization -------------------------------------------------------------
    def standardize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token mean and std (unbiased, as torch.std and InterProt compute it)."""
        mu = x.mean(dim=-1, keepdim=True)
        centred = x - mu
        std = centred.std(dim=-1, keepdim=True)
        return centred / (std + STANDARDIZE_EPS), mu, std

    def _to_sae_space(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if self.cfg.normalize == "token_standardize":
            x_n, mu, std = self.standardize(x)
            return x_n, (mu, std)
        return x, ()

    def _from_sae_space(self, y: torch.Tensor, stats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if stats:
            mu, std = stats
            return y * std + mu
        return y

    # -- encode / decode ------------------------------------------------------------------
    def _encode(
        self, x_n: torch.Tensor, dead_mask: torch.Tensor | None = None, k_aux: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return _SparseTopKEncoder.apply(
            x_n,
            self.b_dec,
            self.W_enc,
            self.b_enc,
            (self.cfg.k, k_aux),
            dead_mask,
            self._pre_workspace(x_n),
        )

    def _pre_workspace(self, x: torch.Tensor) -> torch.Tensor | None:
        """A reused [N, width] pre-activation buffer for inputs ``x``, on CPU only.

        The CPU allocator returns big blocks to the OS, so a fresh [N, width] tensor each
        step pays its page faults again (~20% of a step at width 16384); CUDA's caching
        allocator already avoids that. Not used under autocast, which ``out=`` would bypass.
        """
        if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            return None
        shape = (x.shape[0], self.cfg.width)
        dtype = torch.promote_types(x.dtype, self.b_dec.dtype)  # that of x - b_dec
        ws = self._workspace
        if (
            ws is None
            or ws.shape != shape
            or ws.dtype != dtype
            or ws.is_inference() != torch.is_inference_mode_enabled()
        ):
            ws = self._workspace = torch.empty(shape, dtype=dtype)
        return ws

    def encode(self, x: torch.Tensor) -> TopK:
        """The k active latents of each token of ``x`` [N, d_model]."""
        x_n, _ = self._to_sae_space(x)
        values, indices, _, _ = self._encode(x_n)
        return TopK(values, indices)

    def decode(
        self, values: torch.Tensor, indices: torch.Tensor, x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Reconstruct tokens from their active latents.

        For ``token_standardize`` models pass the encoded inputs ``x``: their per-token mean
        and std are needed to undo the standardization.
        """
        y = sparse_decode(values, indices, self.W_dec) + self.b_dec
        if self.cfg.normalize == "token_standardize":
            if x is None:
                raise ValueError("decode() of a token_standardize SAE needs the encoded inputs x")
            _, stats = self._to_sae_space(x)
            return self._from_sae_space(y, stats)
        return y

    def forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None) -> SAEOutput:
        """Reconstruct ``x`` [N, d_model]; with ``dead_mask`` [width] also the AuxK loss.

        ``fvu`` is the squared error over the batch's total variance (what training
        minimises); ``auxk_loss`` is the fraction of the residual error's variance that the
        top-k_aux dead latents fail to explain (Gao et al. 2024), zero when none is dead.
        """
        x_n, stats = self._to_sae_space(x)
        k_aux = 0
        if dead_mask is not None:
            k_aux = min(self.cfg.k_aux, int(dead_mask.sum()))
        values, indices, aux_values, aux_indices = self._encode(x_n, dead_mask, k_aux)
        x_hat = self._from_sae_space(sparse_decode(values, indices, self.W_dec) + self.b_dec, stats)

        error = x_hat.float() - x.float()
        sse = error.pow(2).sum()
        total_variance = (x.float() - x.float().mean(dim=0)).pow(2).sum()
        mse = sse / x.numel()
        fvu = sse / total_variance.clamp_min(_TINY)

        if k_aux > 0:
            residual = (x.float() - x_hat.float()).detach()
            residual_hat = sparse_decode(aux_values, aux_indices, self.W_dec)
            if stats:
                residual_hat = residual_hat * stats[1]  # undo the std scaling, not the mean
            residual_variance = (residual - residual.mean(dim=0)).pow(2).sum()
            residual_sse = (residual_hat.float() - residual).pow(2).sum()
            auxk_loss = residual_sse / residual_variance.clamp_min(_TINY)
        else:
            auxk_loss = sse.new_zeros(())
        return SAEOutput(x_hat, values, indices, mse, fvu, auxk_loss)

    # -- decoder invariants ---------------------------------------------------------------
    @torch.no_grad()
    def set_decoder_norm_to_unit(self) -> None:
        """Rescale each decoder row to unit norm (so latent values carry the scale)."""
        norm = self.W_dec.norm(dim=1, keepdim=True)
        self.W_dec.div_(norm.clamp_min(torch.finfo(self.W_dec.dtype).eps))

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder(self) -> None:
        """Project out the gradient component along each decoder row.

        With rows renormalized after every step, that component only changes the norm that
        the renormalization undoes, yet it would still distort Adam's moment estimates.
        """
        grad = self.W_dec.grad
        if grad is None:
            return
        rows = self.W_dec.data
        # Three passes over [width, d_model] (a batched dot product, a norm, one fused update)
        # instead of the six that the same formula written with temporaries takes.
        dots = torch.bmm(grad.unsqueeze(1), rows.unsqueeze(2)).view(-1)
        coefficient = dots / rows.norm(dim=1).square()
        grad.addcmul_(rows, coefficient.unsqueeze(1), value=-1.0)

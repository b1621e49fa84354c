"""Choosing the torch device: a module of its own so SAE training need not import fair-esm."""

from __future__ import annotations

import torch


def resolve_device(preference: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when there is one, else CPU; an explicit CUDA request without CUDA is an error."""
    if isinstance(preference, torch.device):
        preference = str(preference)
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available here")
    return device

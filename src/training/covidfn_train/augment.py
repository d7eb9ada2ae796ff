"""On-device augmentation (runs where the data lives: GPU in the GPU run, CPU otherwise)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_grid(b: int, device, max_rot=15.0, scale=(0.85, 1.15), max_shift=0.06, flip=True, aspect=None):
    """Random rotation, zoom (scale > 1 zooms in), shift and mirror as 2 x 3 affine matrices (output -> input).
    aspect=(lo, hi): the zoom is split into sx = sc * sqrt(r), sy = sc / sqrt(r) with r log-uniform in [lo, hi]
    (torchvision RandomResizedCrop's aspect jitter); None draws nothing, so the default stream is unchanged."""
    ang = (torch.rand(b, device=device) * 2 - 1) * math.radians(max_rot)
    sc = torch.empty(b, device=device).uniform_(scale[0], scale[1])
    tx = (torch.rand(b, device=device) * 2 - 1) * max_shift * 2
    ty = (torch.rand(b, device=device) * 2 - 1) * max_shift * 2
    fx = torch.where(torch.rand(b, device=device) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=device)
    if aspect is None:
        sx = sy = sc
    else:
        r = torch.exp(torch.empty(b, device=device).uniform_(math.log(aspect[0]), math.log(aspect[1])))
        sx, sy = sc * r.sqrt(), sc / r.sqrt()
    # rotation R(ang) applied after the per-axis zoom: [[cos/sx, -sin/sy], [sin/sx, cos/sy]]
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos / sx * fx, -sin / sy, tx], 1), torch.stack([sin / sx * fx, cos / sy, ty], 1)], 1)
    return theta


def geometric(x: torch.Tensor, m: torch.Tensor | None = None, **kw):
    theta = affine_grid(x.shape[0], x.device, **kw)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if m is not None:
        m = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x, m


def intensity(x: torch.Tensor, strength: float = 1.0, blur_p: float = 0.0):
    b = x.shape[0]
    dev = x.device
    gamma = torch.exp((torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * 0.35 * strength)
    x = x.clamp(0, 1) ** gamma
    contrast = 1 + (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * 0.2 * strength
    bright = (torch.rand(b, 1, 1, 1, device=dev) * 2 - 1) * 0.08 * strength
    mean = x.mean((2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if blur_p > 0:
        blurred = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        sel = (torch.rand(b, 1, 1, 1, device=dev) < blur_p).float()
        x = sel * blurred + (1 - sel) * x
    noise = torch.randn_like(x) * (torch.rand(b, 1, 1, 1, device=dev) * 0.02 * strength)
    return (x + noise).clamp(0, 1)

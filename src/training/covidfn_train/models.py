"""DFSN and DTCN (docs/model-card.md). Code works on torch 1.13 and 2.x.

Input of every exported graph: N x 1 x 352 x 352 float32 in [0, 1] (lung2d-v1). The graph broadcasts the
channel to 3 and applies the encoder's own input normalisation (x*255 - per-channel mean; the ImageNet
ResNet-18 from Microsoft.ML.DnnImageFeaturizer.ResNet18 was trained on 0-255 BGR minus a mean image).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Spatial mean of ResNetPreprocess.onnx "MeanImage" per channel (B, G, R order of the encoder input);
# filled exactly by pack_for_gpu.py into encoder_resnet18.npz ("input_mean"); these are the defaults.
DEFAULT_INPUT_MEAN = (104.0, 117.0, 123.0)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + idt)


def make_layer(cin, cout, stride):
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class ResNet18Trunk(nn.Module):
    """torchvision-layout ResNet-18 (stem + layer1..layer4) used to check the ONNX weight mapping."""

    def __init__(self, with_layer4: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = make_layer(64, 64, 1)
        self.layer2 = make_layer(64, 128, 2)
        self.layer3 = make_layer(128, 256, 2)
        # the CNTK ImageNet export has 3 basic blocks in layer4; DFSN does not use layer4
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512, 1), BasicBlock(512, 512, 1)) \
            if with_layer4 else None

    def forward_all(self, x):
        s = F.relu(self.bn1(self.conv1(x)))
        l1 = self.layer1(self.maxpool(s))
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3) if self.layer4 is not None else None
        return s, l1, l2, l3, l4


def cbr(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DFSN(nn.Module):
    """Dynamic Feature Segmentation Network.

    encoder: ResNet-18 stem + layer1..layer3 (ImageNet) + a light extra stage (depthwise-separable, stride 2);
    low->high aggregation: layer1 features pooled to each high-level resolution, projected 1x1 and added;
    dynamic fusion: three high-level scales (1/8, 1/16, 1/32) reduced to C channels, softmax weights per scale and
    channel from their globally pooled descriptors (input-conditioned), fused at 1/8;
    decoder: fused(1/8) -> 1/4 (+ layer1) -> 1/2 (+ stem) -> full resolution;
    deep supervision: side outputs at each high-level scale and the fused map (training only).
    """

    def __init__(self, c: int = 64, input_mean=DEFAULT_INPUT_MEAN):
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(input_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.enc = ResNet18Trunk(with_layer4=False)
        self.extra = nn.Sequential(cbr(256, 256, 3, 2, groups=256), cbr(256, 256, 1))
        # low-level aggregation into each high-level stage
        self.agg2 = nn.Conv2d(64, 128, 1)
        self.agg3 = nn.Conv2d(64, 256, 1)
        self.agg4 = nn.Conv2d(64, 256, 1)
        self.red2 = cbr(128, c, 1)
        self.red3 = cbr(256, c, 1)
        self.red4 = cbr(256, c, 1)
        self.fuse_mlp = nn.Sequential(nn.Linear(3 * c, c), nn.ReLU(inplace=True), nn.Linear(c, 3 * c))
        self.c = c
        self.fuse_conv = cbr(c, c, 3)
        self.dec1_l1 = cbr(64, 32, 1)
        self.dec1 = nn.Sequential(cbr(c + 32, c, 3), cbr(c, c, 3))
        self.dec2_s = cbr(64, 16, 1)
        self.dec2 = nn.Sequential(cbr(c + 16, 32, 3), cbr(32, 32, 3))
        self.head = nn.Conv2d(32, 1, 1)
        self.side2 = nn.Conv2d(c, 1, 1)
        self.side3 = nn.Conv2d(c, 1, 1)
        self.side4 = nn.Conv2d(c, 1, 1)
        self.side_f = nn.Conv2d(c, 1, 1)

    def normalise(self, x):
        return x * 255.0 - self.input_mean  # N x 1 x H x W broadcast to N x 3 x H x W

    def features(self, x):
        """Returns dict of intermediate features and the full-resolution lesion logit."""
        e = self.enc
        z = self.normalise(x)
        s = F.relu(e.bn1(e.conv1(z)))                 # 64 @ 1/2
        l1 = e.layer1(e.maxpool(s))                   # 64 @ 1/4
        l2 = e.layer2(l1)                             # 128 @ 1/8
        l2 = l2 + self.agg2(F.avg_pool2d(l1, 2))
        l3 = e.layer3(l2)                             # 256 @ 1/16
        l3 = l3 + self.agg3(F.avg_pool2d(l1, 4))
        l4 = self.extra(l3)                           # 256 @ 1/32
        l4 = l4 + self.agg4(F.avg_pool2d(l1, 8))
        size = l2.shape[-2:]
        r2 = self.red2(l2)
        r3 = F.interpolate(self.red3(l3), size=size, mode="bilinear", align_corners=False)
        r4 = F.interpolate(self.red4(l4), size=size, mode="bilinear", align_corners=False)
        g = torch.cat([r2.mean((2, 3)), r3.mean((2, 3)), r4.mean((2, 3))], 1)
        w = torch.softmax(self.fuse_mlp(g).view(-1, 3, self.c), dim=1)   # per-scale weights per channel
        fused = r2 * w[:, 0, :, None, None] + r3 * w[:, 1, :, None, None] + r4 * w[:, 2, :, None, None]
        fused = self.fuse_conv(fused)                 # c @ 1/8
        d1 = F.interpolate(fused, size=l1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([d1, self.dec1_l1(l1)], 1))            # c @ 1/4
        d2 = F.interpolate(d1, size=s.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([d2, self.dec2_s(s)], 1))              # 32 @ 1/2
        logit = F.interpolate(self.head(d2), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"l3": l3, "l4": l4, "fused": fused, "d1": d1, "r2": r2, "r3": r3, "r4": r4,
                "scale_w": w, "logit": logit}

    def side_logits(self, f, size):
        return [F.interpolate(h(f[k]), size=size, mode="bilinear", align_corners=False)
                for h, k in ((self.side2, "r2"), (self.side3, "r3"), (self.side4, "r4"), (self.side_f, "fused"))]

    def forward(self, x):
        return torch.sigmoid(self.features(x)["logit"])


def gated_pool(f, gate):
    g = F.interpolate(gate, size=f.shape[-2:], mode="bilinear", align_corners=False)
    return (f * g).sum((2, 3)) / (g.sum((2, 3)) + 1e-3)


class DTCNHead(nn.Module):
    """Dynamic selection of DFSN pixel-level information: a spatial gate from the lesion probability map and a
    learned attention map on the fused features (sigmoid(conv([fused, prob]))) weight the pooling of encoder,
    fused and decoder features; global average pooling of the same features and lesion-burden statistics are
    concatenated; a channel-selection (SE-style) gate then a small MLP give 3 logits."""

    def __init__(self, c: int = 64, hidden: int = 128, n_classes: int = 3, dropout: float = 0.3):
        super().__init__()
        self.att = nn.Sequential(nn.Conv2d(c + 1, 16, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 1, 1))
        dim = 2 * (256 + 256 + c + c) + 3
        self.dim = dim
        self.select = nn.Sequential(nn.Linear(dim, dim // 8), nn.ReLU(inplace=True), nn.Linear(dim // 8, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes))

    def embed(self, f, prob):
        p8 = F.interpolate(prob, size=f["fused"].shape[-2:], mode="bilinear", align_corners=False)
        a = torch.sigmoid(self.att(torch.cat([f["fused"], p8], 1)))
        gate = 0.5 * (p8 + a)                       # lesion map + learned selection, at 1/8
        feats = [f["l3"], f["l4"], f["fused"], f["d1"]]
        gated = [gated_pool(t, gate) for t in feats]
        glob = [t.mean((2, 3)) for t in feats]
        burden = torch.cat([prob.mean((2, 3)), prob.amax((2, 3)), (prob > 0.5).float().mean((2, 3))], 1)
        v = torch.cat(gated + glob + [burden], 1)
        return v * torch.sigmoid(self.select(v))

    def forward(self, f, prob):
        return self.mlp(self.embed(f, prob))


class DTCN(nn.Module):
    """Dynamic Transfer-learning Classification Network: DFSN backbone (transferred) + DTCNHead."""

    def __init__(self, dfsn: DFSN):
        super().__init__()
        self.dfsn = dfsn
        self.head = DTCNHead(dfsn.c)

    def logits_and_prob(self, x):
        f = self.dfsn.features(x)
        prob = torch.sigmoid(f["logit"])
        return self.head(f, prob), prob, f

    def forward(self, x):
        return torch.softmax(self.logits_and_prob(x)[0], dim=1)


class Combined(nn.Module):
    """One backbone pass -> (lesion_prob, class_prob); valid when DTCN keeps the DFSN backbone frozen."""

    def __init__(self, dtcn: DTCN):
        super().__init__()
        self.dtcn = dtcn

    def forward(self, x):
        logits, prob, _ = self.dtcn.logits_and_prob(x)
        return prob, torch.softmax(logits, dim=1)


class EnsembleCombined(nn.Module):
    """Mean of several fine-tuned DTCNs, each one pass of its own backbone: lesion_prob = mean of the members' lesion
    maps, class_prob = mean of their class probabilities. Members differ only in data order and sampling
    (docs/model-card.md, round 2); averaging them lowers the variance that picking one checkpoint on a 118-image
    validation split leaves in."""

    def __init__(self, members: list[DTCN]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        lesion, cls = [], []
        for m in self.members:
            logits, prob, _ = m.logits_and_prob(x)
            lesion.append(prob)
            cls.append(torch.softmax(logits, dim=1))
        n = float(len(self.members))
        return sum(lesion) / n, sum(cls) / n

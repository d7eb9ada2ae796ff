"""ImageNet ResNet-18 encoder weights from NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (MIT).

The ONNX (opset 8, CNTK export, 110 initialisers = 22 convs x (weight + 4 BN tensors); layer4 has 3 blocks) is mapped into torchvision-layout ResNet-18 modules by walking
the graph: every Conv is followed by its BatchNormalization; convs appear in the order
stem, layer1.0.conv1, layer1.0.conv2, layer1.1.conv1, layer1.1.conv2, layer2.0.downsample, layer2.0.conv1, ...
Shapes are checked for every tensor, all 110 initialisers must be consumed.

Verification (verify()): an independent node-by-node interpreter of the ONNX graph built from torch functional
ops (with the graph's own asymmetric pads) is run on a random input and compared with the torch modules holding
the mapped weights, at layer3 and at the final pooled output.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import torch
import torch.nn.functional as F

NUGET_REL = "microsoft.ml.dnnimagefeaturizer.resnet18/0.23.1/tools/DnnImageModels"


def find_onnx_dir() -> str:
    roots = [os.environ.get("NUGET_PACKAGES", ""), os.path.expanduser("~/.nuget/packages")]
    for r in roots:
        if r and os.path.isdir(os.path.join(r, NUGET_REL)):
            return os.path.join(r, NUGET_REL)
    hits = glob.glob(os.path.expanduser("~/.nuget/packages/microsoft.ml.dnnimagefeaturizer.resnet18/*/tools/DnnImageModels"))
    if hits:
        return hits[0]
    raise FileNotFoundError("ResNet18.onnx not found: run `dotnet restore tools/FetchResNet18` first")


def module_order():
    names = ["conv1"]
    for li in (1, 2, 3, 4):
        for b in range(3 if li == 4 else 2):  # this CNTK export has 3 blocks in layer4 (unused by DFSN)
            if b == 0 and li > 1:
                names.append(f"layer{li}.{b}.downsample")
            names += [f"layer{li}.{b}.conv1", f"layer{li}.{b}.conv2"]
    return names


def _bn_name(conv_name: str) -> str:
    if conv_name == "conv1":
        return "bn1"
    if conv_name.endswith("downsample"):
        return conv_name  # handled specially (.0 conv, .1 bn)
    return conv_name.replace("conv", "bn")


def load_graph(onnx_path: str):
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return m, init


def mapped_state_dict(onnx_path: str) -> dict:
    m, init = load_graph(onnx_path)
    nodes = list(m.graph.node)
    produced_by = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    convs = [n for n in nodes if n.op_type == "Conv"]
    order = module_order()
    if len(convs) != len(order):
        raise ValueError(f"expected {len(order)} convs, found {len(convs)}")
    sd, used = {}, set()
    for name, conv in zip(order, convs):
        w = init[conv.input[1]]
        used.add(conv.input[1])
        bn = [c for c in consumers[conv.output[0]] if c.op_type == "BatchNormalization"]
        if len(bn) != 1 or len(conv.input) != 2:
            raise ValueError(f"conv {conv.name} not followed by exactly one BN / has bias")
        bn = bn[0]
        scale, bias, mean, var = (init[i] for i in bn.input[1:5])
        used.update(bn.input[1:5])
        if name.endswith("downsample"):
            cn, bnn = name + ".0", name + ".1"
        else:
            cn, bnn = name, _bn_name(name)
        sd[cn + ".weight"] = w
        sd[bnn + ".weight"], sd[bnn + ".bias"] = scale, bias
        sd[bnn + ".running_mean"], sd[bnn + ".running_var"] = mean, var
    if used != set(init):
        raise ValueError(f"unused initialisers: {sorted(set(init) - used)}")
    return sd


def input_mean(prep_path: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper
    p = onnx.load(prep_path)
    mi = {t.name: numpy_helper.to_array(t) for t in p.graph.initializer}["MeanImage"]
    mi = mi.reshape(3, -1)
    return mi.mean(1).astype(np.float32)  # per channel of the encoder input (BGR order)


def interpret(onnx_path: str, x: torch.Tensor, stop_at: str | None = None):
    """Runs the ONNX graph with torch functional ops, honouring asymmetric pads. Returns final output and a dict
    of every tensor by name."""
    from onnx import helper
    m, init = load_graph(onnx_path)
    env = {m.graph.input[0].name: x}
    t = {k: torch.from_numpy(v.copy()) for k, v in init.items()}
    for n in m.graph.node:
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        ins = [env[i] if i in env else t[i] for i in n.input]
        if n.op_type == "Conv":
            p = a["pads"]  # [top, left, bottom, right]
            xi = F.pad(ins[0], (p[1], p[3], p[0], p[2]))
            y = F.conv2d(xi, ins[1], None, tuple(a["strides"]), 0, tuple(a["dilations"]), a["group"])
        elif n.op_type == "BatchNormalization":
            xx, s, b, mu, var = ins
            eps = a["epsilon"]
            y = (xx - mu[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps) * s[None, :, None, None] + b[None, :, None, None]
        elif n.op_type == "Relu":
            y = torch.relu(ins[0])
        elif n.op_type == "Add":
            y = ins[0] + ins[1]
        elif n.op_type == "MaxPool":
            p = a["pads"]
            xi = F.pad(ins[0], (p[1], p[3], p[0], p[2]), value=float("-inf"))
            y = F.max_pool2d(xi, tuple(a["kernel_shape"]), tuple(a["strides"]))
        elif n.op_type == "AveragePool":
            y = F.avg_pool2d(ins[0], tuple(a["kernel_shape"]), tuple(a["strides"]))
        else:
            raise ValueError(n.op_type)
        env[n.output[0]] = y
    return env[m.graph.output[0].name], env


def verify(onnx_path: str, seed: int = 0) -> dict:
    from .models import ResNet18Trunk
    torch.manual_seed(seed)
    trunk = ResNet18Trunk(with_layer4=True).eval()
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mapped_state_dict(onnx_path).items()}
    missing, unexpected = trunk.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"mapping mismatch: missing {missing}, unexpected {unexpected}")
    x = torch.randn(1, 3, 224, 224) * 60.0
    with torch.no_grad():
        ref, env = interpret(onnx_path, x)
        s, l1, l2, l3, l4 = trunk.forward_all(x)
        ours = F.avg_pool2d(l4, 7)
    # layer3 output in the ONNX graph = the Relu after the layer3.1 Add (input of the layer4 downsample conv)
    import onnx
    m = onnx.load(onnx_path)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    l3_name = convs[module_order().index("layer4.0.downsample")].input[0]
    l3_ref = env[l3_name]
    res = {
        "final_max_abs_diff": float((ours - ref).abs().max()),
        "final_max_abs_ref": float(ref.abs().max()),
        "layer3_max_abs_diff": float((l3 - l3_ref).abs().max()),
        "layer3_max_abs_ref": float(l3_ref.abs().max()),
    }
    res["ok"] = res["final_max_abs_diff"] <= 1e-4 * max(1.0, res["final_max_abs_ref"]) and \
        res["layer3_max_abs_diff"] <= 1e-4 * max(1.0, res["layer3_max_abs_ref"])
    return res

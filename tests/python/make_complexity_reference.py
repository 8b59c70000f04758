#!/usr/bin/python3
"""Writes what PyTorch itself says about the cost of torchvision's DenseNets, for test_complexity.

For each case, OUT/complexity/<case>.json holds:
  repr          print(net), verbatim
  state_dict    [name, shape] in order; model_bytes fp32 and bf16 (after net.to(torch.bfloat16))
  modules       every leaf module in forward order, from forward hooks: name, output shape,
                parameters, and MACs (a convolution's output elements times in_channels*kh*kw, the
                classifier's output elements times in_features)
  naive_bytes   every distinct storage the eval forward creates under torch.no_grad, recorded with
                a TorchDispatchMode that keeps them all alive (so no address is reused), the input
                included and parameters excluded
  saved_bytes   every distinct storage autograd saves in a training forward (saved_tensors_hooks),
                the input included, parameters and buffers excluded
"""
import json
import os
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models  # noqa: E402

CASES = {
    # The lecture's network and figure: 2,834,161,664 MACs at 224x224.
    "densenet121": dict(arch="densenet121", num_classes=1000, batch=1, size=224),
    "densenet169_64": dict(arch="densenet169", num_classes=1000, batch=2, size=64),
    "custom_small": dict(arch="custom", growth_rate=12, block_config=[2, 3, 2], num_init_features=24, bn_size=4,
                         num_classes=10, stem="small_inputs", in_channels=1, batch=3, size=16),
    "densenet121_grey": dict(arch="densenet121", num_classes=10, in_channels=1, batch=2, size=32),
}


def storage_key(t):
    return t.storage().data_ptr(), t.storage().nbytes()


class RecordOutputs(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.outputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        self.outputs += [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
        return result


def distinct_bytes(tensors, exclude):
    storages = {storage_key(t) for t in tensors if t.numel() > 0}
    return sum(nbytes for ptr, nbytes in storages if ptr not in exclude)


def module_costs(net, x):
    rows, hooks = [], []
    for name, m in net.named_modules():
        if len(list(m.children())) > 0:
            continue

        def hook(m, inputs, out, name=name):
            macs = 0
            if isinstance(m, torch.nn.Conv2d):
                macs = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            elif isinstance(m, torch.nn.Linear):
                macs = out.numel() * m.in_features
            rows.append(dict(name=name, kind=type(m).__name__, output=list(out.shape),
                             parameters=sum(p.numel() for p in m.parameters(recurse=False)), macs=macs))
        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return rows


def describe(case):
    torch.manual_seed(0)
    net = reference_models.build(case)
    x = torch.rand(case["batch"], case.get("in_channels", 3), case["size"], case["size"])
    params = {p.data_ptr() for p in net.parameters()} | {b.data_ptr() for b in net.buffers()}
    out = dict(repr=str(net) + "\n",
               state_dict=[[k, list(v.shape)] for k, v in net.state_dict().items()],
               parameters=sum(p.numel() for p in net.parameters()),
               model_bytes_fp32=sum(v.numel() * v.element_size() for v in net.state_dict().values()))

    net.eval()
    out["modules"] = module_costs(net, x)
    out["macs"] = sum(r["macs"] for r in out["modules"])
    with torch.no_grad(), RecordOutputs() as record:
        net(x)
    out["naive_bytes"] = distinct_bytes([x] + record.outputs, params)
    del record

    net.train()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        net(x)
    out["saved_bytes"] = distinct_bytes(saved, params)

    bf16 = net.to(torch.bfloat16).state_dict()
    out["model_bytes_bf16"] = sum(v.numel() * v.element_size() for v in bf16.values())
    return out


def main():
    out_dir = os.path.join(sys.argv[1], "complexity")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    for name, case in CASES.items():
        path = os.path.join(out_dir, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(dict(case=case, **describe(case)), f)
        os.replace(path + ".tmp", path)
        print("wrote", path)


if __name__ == "__main__":
    main()

"""The DenseNets the parity tests build in torchvision, and how they are given non-trivial state."""
import torch
import torch.nn as nn
import torchvision


def build(case):
    """case: dict with arch (a torchvision name or "custom") and its settings."""
    if case["arch"] != "custom":
        net = getattr(torchvision.models, case["arch"])(num_classes=case["num_classes"])
    else:
        net = torchvision.models.DenseNet(growth_rate=case["growth_rate"], block_config=tuple(case["block_config"]),
                                          num_init_features=case["num_init_features"], bn_size=case["bn_size"],
                                          num_classes=case["num_classes"])
    in_channels = case.get("in_channels", 3)
    features = case.get("num_init_features", 64)
    if case.get("stem") == "small_inputs":
        # The DenseNet paper's CIFAR stem, as Pleiss et al.'s small_inputs=True: one 3x3/1 conv.
        net.features.conv0 = nn.Conv2d(in_channels, features, 3, stride=1, padding=1, bias=False)
        del net.features.norm0, net.features.relu0, net.features.pool0
        nn.init.kaiming_normal_(net.features.conv0.weight)
    elif in_channels != 3:
        net.features.conv0 = nn.Conv2d(in_channels, features, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.features.conv0.weight)
    return net


def perturb(net, generator):
    """Running statistics, gammas and betas away from their defaults, so that every term is tested."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=generator))
                m.bias.copy_(0.1 * torch.randn(c, generator=generator))
                m.num_batches_tracked.fill_(7)

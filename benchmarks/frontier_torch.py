"""The PyTorch contender of `frontier.py`: a `TrainConfig`'s network and recipe, written plainly in PyTorch.

The same layers as `digits.train.models.build` (strided 'same' convolutions,
batch norm with the same momentum instead of a bias, ReLU, dense layers,
dropout, softmax over 10), Adam or AdamW, the same schedule, batch size and
epochs, on the same split, in memory, shuffled each epoch, the ragged tail
dropped. The validation images are evaluated after each epoch, as `fit` and
`digits` do. torch is imported here only: it is no dependency of `digits`.
"""

from __future__ import annotations

import torch
from torch import nn

from digits.config import TrainConfig
from digits.train.models import BN_MOMENTUM, ONECYCLE_END, ONECYCLE_START, ONECYCLE_WARMUP


def network(config: TrainConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels, side = 1, 28
    for filters, kernel, stride in config.convs or () if config.arch == "cnn" else ():
        layers += [nn.Conv2d(channels, filters, kernel, stride, padding=kernel // 2, bias=not config.batch_norm)]
        layers += [nn.BatchNorm2d(filters, momentum=1 - BN_MOMENTUM)] if config.batch_norm else []
        layers += [nn.ReLU()]
        channels, side = filters, -(-side // stride)
    layers.append(nn.Flatten())
    width = channels * side * side
    for units in config.hidden:
        layers += [nn.Linear(width, units, bias=not config.batch_norm)]
        layers += [nn.BatchNorm1d(units, momentum=1 - BN_MOMENTUM)] if config.batch_norm else []
        layers += [nn.ReLU()] + ([nn.Dropout(config.dropout)] if config.dropout else [])
        width = units
    layers.append(nn.Linear(width, 10))  # softmax is inside the loss, and argmax needs none
    return nn.Sequential(*layers)


def _schedule(optimizer, config: TrainConfig, total: int):
    lr = config.learning_rate
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lr,
            total_steps=total,
            pct_start=ONECYCLE_WARMUP,
            div_factor=1 / ONECYCLE_START,
            final_div_factor=ONECYCLE_START / ONECYCLE_END,
            cycle_momentum=False,
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def train(config: TrainConfig, split, x_test, y_test, clock_type) -> dict:
    """Train for the config's epochs; the clock reads the test accuracy after each one."""
    torch.manual_seed(config.seed)
    model = network(config)
    x, y = torch.from_numpy(split.x_train)[:, None], torch.from_numpy(split.y_train).long()
    x_val, y_val = torch.from_numpy(split.x_val)[:, None], torch.from_numpy(split.y_val).long()
    test_x, test_y = torch.from_numpy(x_test)[:, None], torch.from_numpy(y_test).long()
    steps = len(x) // config.batch_size
    kind = torch.optim.AdamW if config.weight_decay else torch.optim.Adam
    optimizer = kind(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = _schedule(optimizer, config, steps * config.epochs)
    loss_function = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def accuracy(images, labels) -> float:
        model.eval()
        with torch.no_grad():
            hits = sum(
                int((model(images[i : i + 1024]).argmax(1) == labels[i : i + 1024]).sum())
                for i in range(0, len(images), 1024)
            )
        model.train()
        return hits / max(1, len(images))

    clock = clock_type()
    for _ in range(config.epochs):
        order = torch.randperm(len(x))[: steps * config.batch_size].view(steps, config.batch_size)
        for batch in order:
            optimizer.zero_grad(set_to_none=True)
            loss_function(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
        accuracy(x_val, y_val)  # on the clock, as the others validate each epoch
        clock.epoch(lambda: accuracy(test_x, test_y))
    return {"train_seconds": clock.seconds(), "epochs": clock.epochs, "samples_per_epoch": steps * config.batch_size}

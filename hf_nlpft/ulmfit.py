"""Fine-tuning schedules that ULMFiT (Howard & Ruder, 2018) showed to matter for pretrained RNNs.

Layer groups, bottom to top: the embeddings, each recurrent layer / attention block, then the task head (every
parameter outside the base model). Discriminative learning rates give each group below the top `lr / decay^k`;
gradual unfreezing trains only the head in the first epoch and unfreezes one more group per epoch.
"""

import torch
from transformers import PreTrainedModel, TrainerCallback, TrainingArguments


def layer_groups(model: PreTrainedModel) -> list[list[tuple[str, torch.nn.Parameter]]]:
    """Named parameters grouped bottom-up: embeddings, layer 0..L-1 (final norms join the last), head."""
    prefix = f"{model.base_model_prefix}."
    num_layers = len(model.base_model.layers)
    groups: list[list] = [[] for _ in range(num_layers + 2)]
    for name, param in model.named_parameters():
        if not name.startswith(prefix):
            groups[-1].append((name, param))
        elif name.startswith(f"{prefix}layers."):
            groups[1 + int(name[len(f"{prefix}layers.") :].split(".")[0])].append((name, param))
        elif name.startswith(f"{prefix}embeddings"):
            groups[0].append((name, param))
        else:
            groups[num_layers].append((name, param))
    return groups


def freeze_encoder(model: PreTrainedModel) -> int:
    """Train only the head; returns the number of parameters left trainable."""
    for param in model.base_model.parameters():
        param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def discriminative_optimizer(model: PreTrainedModel, args: TrainingArguments, decay: float) -> torch.optim.AdamW:
    """AdamW with one learning rate per layer group: the head at `args.learning_rate`, each group below / decay."""
    groups = layer_groups(model)
    param_groups = []
    for depth, group in enumerate(reversed(groups)):
        lr = args.learning_rate / (decay**depth)
        decayed = [p for n, p in group if p.ndim >= 2 and "norm" not in n]
        plain = [p for n, p in group if not (p.ndim >= 2 and "norm" not in n)]
        param_groups += [
            {"params": decayed, "lr": lr, "weight_decay": args.weight_decay},
            {"params": plain, "lr": lr, "weight_decay": 0.0},
        ]
    param_groups = [group for group in param_groups if group["params"]]
    return torch.optim.AdamW(
        param_groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
    )


class GradualUnfreezingCallback(TrainerCallback):
    """Epoch e trains the top e+1 layer groups (the head alone first); the rest stay frozen."""

    def __init__(self, model: PreTrainedModel):
        self.groups = layer_groups(model)

    def _apply(self, epoch: int) -> None:
        trainable_from = max(0, len(self.groups) - 1 - epoch)
        for index, group in enumerate(self.groups):
            for _, param in group:
                param.requires_grad_(index >= trainable_from)

    def on_train_begin(self, args, state, control, **kwargs):
        self._apply(int(state.epoch or 0))

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._apply(int(state.epoch or 0))

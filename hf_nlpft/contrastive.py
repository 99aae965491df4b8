"""Unsupervised SimCSE: a sentence and its second dropout view are a positive pair, the rest of the batch negatives.

The model being trained is a plain base model (`AutoModel`), so the result is a sentence encoder that saves and
loads like any other; the objective lives in a `Trainer` subclass.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer


def sentence_embeddings(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the last layer's outputs over real tokens: one vector per sentence, for either family."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def two_views(model: PreTrainedModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed every sentence twice in one forward pass; dropout (train mode) makes the views differ."""
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    both = sentence_embeddings(model, input_ids.repeat(2, 1), attention_mask.repeat(2, 1))
    return both.chunk(2)


def info_nce_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each first view against all second views (cosine / temperature); returns (loss, logits)."""
    logits = nn.functional.normalize(first, dim=-1) @ nn.functional.normalize(second, dim=-1).T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return nn.functional.cross_entropy(logits.float(), targets), logits


def alignment_and_uniformity(first: torch.Tensor, second: torch.Tensor) -> tuple[float, float]:
    """Wang & Isola (2020): alignment E‖f(x)−f(x⁺)‖², uniformity log E exp(−2‖f(x)−f(y)‖²) on unit vectors."""
    first, second = nn.functional.normalize(first.float(), dim=-1), nn.functional.normalize(second.float(), dim=-1)
    alignment = (first - second).pow(2).sum(-1).mean().item()
    distances = torch.pdist(first).pow(2)
    uniformity = distances.mul(-2).exp().mean().log().item() if distances.numel() else float("nan")
    return alignment, uniformity


class ContrastiveTrainer(Trainer):
    """Trainer for SimCSE: loss from two dropout views; evaluation reports retrieval accuracy and geometry."""

    def __init__(self, *args, temperature: float = 0.05, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        first, second = two_views(model, inputs)
        loss, logits = info_nce_loss(first, second, self.temperature)
        return (loss, {"logits": logits}) if return_outputs else loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Each sentence's second view must be retrieved among the batch; dropout stays on to make that view."""
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.train()
        totals = torch.zeros(5, dtype=torch.float64)  # loss·n, correct, alignment·n, uniformity·n, n
        # A private RNG stream: the views are reproducible and training's RNG state (for exact resume) is untouched.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.seed)
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                first, second = two_views(model, batch)
                loss, logits = info_nce_loss(first, second, self.temperature)
                correct = (logits.argmax(-1) == torch.arange(len(logits), device=logits.device)).sum().item()
                alignment, uniformity = alignment_and_uniformity(first, second)
                size = len(logits)
                batch_totals = torch.tensor(
                    [loss.item() * size, correct, alignment * size, 0.0 if math.isnan(uniformity) else uniformity * size,
                     size], dtype=torch.float64, device=self.args.device,
                )
                totals += self.accelerator.reduce(batch_totals, reduction="sum").cpu()
        model.train(was_training)
        count = max(totals[4].item(), 1.0)
        metrics = {
            f"{metric_key_prefix}_loss": totals[0].item() / count,
            f"{metric_key_prefix}_retrieval_accuracy": totals[1].item() / count,
            f"{metric_key_prefix}_alignment": totals[2].item() / count,
            f"{metric_key_prefix}_uniformity": totals[3].item() / count,
            f"{metric_key_prefix}_samples": int(count),
        }
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

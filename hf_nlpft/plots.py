"""PNG figures written beside a trained model: what people look at after a run."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss_curve(log_history: list[dict], path: str | Path) -> Path | None:
    """Train and eval loss against optimizer steps, from `trainer.state.log_history`; None if nothing was logged."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evaluation:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    for points, label, style in ((train, "train", "-"), (evaluation, "eval", "o-")):
        if points:
            steps, losses = zip(*points)
            axes.plot(steps, losses, style, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("Loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""PNG figures written beside a trained model: what people look at after a run."""

from pathlib import Path

import matplotlib
import numpy as np

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


def plot_confusion_matrix(labels, predictions, label_names: list[str], path: str | Path) -> Path:
    """Confusion matrix of integer `labels` (rows, true class) against `predictions` (columns), as counts."""
    from sklearn.metrics import confusion_matrix

    label_names = list(label_names)
    count = len(label_names)
    matrix = confusion_matrix(np.asarray(labels), np.asarray(predictions), labels=list(range(count)))
    size = min(max(4.0, 0.5 * count + 2.5), 20.0)
    figure, axes = plt.subplots(figsize=(size, size * 0.9))
    image = axes.imshow(matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(count), label_names, rotation=45 if count > 4 else 0, ha="right" if count > 4 else "center")
    axes.set_yticks(range(count), label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix")
    if count <= 30:  # beyond that the numbers are unreadable
        threshold = matrix.max() / 2 if matrix.size else 0
        for row in range(count):
            for column in range(count):
                value = matrix[row, column]
                axes.text(column, row, str(value), ha="center", va="center", fontsize=8,
                          color="white" if value > threshold else "black")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_roc_curves(labels, probabilities, label_names: list[str], path: str | Path) -> Path | None:
    """ROC curves with their AUC in the legend; None if no curve is defined (a class absent from `labels`).

    Binary (two label names): `probabilities` is the positive class's probability per example, or rows of two
    probabilities; one curve. More classes: rows of class probabilities; one one-vs-rest curve per class, leaving
    out classes that never occur in `labels` (their curve is undefined).
    """
    from sklearn.metrics import auc, roc_curve

    label_names = list(label_names)
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(label_names) == 2:
        scores = probabilities[:, 1] if probabilities.ndim == 2 else probabilities
        columns = [(label_names[1], labels == 1, scores)]
    else:
        if probabilities.ndim != 2 or probabilities.shape[1] != len(label_names):
            raise ValueError(
                f"expected probabilities of shape (examples, {len(label_names)}), got {probabilities.shape}"
            )
        columns = [(name, labels == index, probabilities[:, index]) for index, name in enumerate(label_names)]
    curves = []
    for name, positives, scores in columns:
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives.astype(np.int64), scores)
        curves.append((name, fpr, tpr, auc(fpr, tpr)))
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(6, 5))
    for name, fpr, tpr, area in curves:
        axes.plot(fpr, tpr, label=f"{name} (AUC = {area:.3f})")
    axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC curve" if len(label_names) == 2 else "ROC curves (one-vs-rest)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8 if len(curves) > 6 else 10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_attention_alignment(panels: list[tuple[list[str], list[str], np.ndarray]], path: str | Path) -> Path:
    """One heatmap per example: generated tokens (rows) × source tokens (columns), cell = attention weight."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5.0), squeeze=False)
    for axis, (source_tokens, generated_tokens, weights) in zip(axes[0], panels):
        axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
        axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=7)
        axis.set_yticks(range(len(generated_tokens)), generated_tokens, fontsize=7)
        axis.set_xlabel("source")
        axis.set_ylabel("generated")
    figure.suptitle("Decoder attention over the source")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

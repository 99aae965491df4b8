"""Precision, recall and F1 for single-label classification: micro, macro and weighted averages, plus per class."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = """
Precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = harmonic mean of the two, computed per class
(one class against the rest) and averaged three ways:
- micro: from the TP/FP/FN totals over all classes (equals accuracy when every class is included);
- macro: unweighted mean of the per-class scores;
- weighted: mean of the per-class scores weighted by each class's support (number of references).
A score whose denominator is zero is set to `zero_division` (0 by default) rather than warned about.
Inputs are integer class ids.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    labels (`list[int]`, optional): the class ids to score and average over. Defaults to
        `range(len(label_names))` when `label_names` is given, else to the sorted ids seen in either input.
    label_names (`list[str]`, optional): name of each class id, indexed by id (`label_names[i]` names id `i`,
        like a model's `id2label`); used as the keys of `per_class`.
    zero_division (`float`, defaults to `0`): value of a score whose denominator is zero.
    sample_weight (`list[float]`, optional): per-example weights.
Returns:
    precision_micro, recall_micro, f1_micro, precision_macro, recall_macro, f1_macro,
    precision_weighted, recall_weighted, f1_weighted (`float`),
    per_class (`dict`): {class name (or int id without `label_names`): {"precision", "recall", "f1", "support"}};
        support is the number of references of that class (their summed weight with `sample_weight`).
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/precision_recall_f1")
    >>> result = metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["neg", "pos"])
    >>> result["f1_macro"], result["per_class"]["pos"]["precision"]
    (0.6666666666666666, 0.5)
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""

_AVERAGES = ("micro", "macro", "weighted")


def _check_class_ids(values, name):
    # datasets encodes a float into an int64 feature with int(), so scores or probabilities passed by mistake
    # would be truncated to class ids silently (0.7 -> 0); refuse non-integral numbers instead.
    if values is None:
        return
    array = np.asarray(values)
    if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        example = array[np.mod(array, 1) != 0].ravel()[0]
        raise ValueError(
            f"{name} must be integer class ids, got non-integral numbers such as {float(example)!r}; "
            "take the argmax of logits or probabilities first"
        )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PrecisionRecallF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.precision_recall_fscore_support.html"
            ],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of integer class ids, refusing non-integral numbers (see `_check_class_ids`)."""
        # (The docstring is required: evaluate appends `inputs_description` to it on instantiation.)
        _check_class_ids(predictions, "predictions")
        _check_class_ids(references, "references")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one integer class id, refusing a non-integral number."""
        _check_class_ids(prediction, "prediction")
        _check_class_ids(reference, "reference")
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self, predictions, references, labels=None, label_names=None, zero_division=0, sample_weight=None
    ):
        if labels is None:
            if label_names is not None:
                labels = list(range(len(label_names)))
            else:
                labels = sorted(set(int(p) for p in predictions) | set(int(r) for r in references))
        labels = [int(label) for label in labels]
        if label_names is not None:
            out_of_range = [label for label in labels if not 0 <= label < len(label_names)]
            if out_of_range:
                raise ValueError(
                    f"label_names has {len(label_names)} names (indexed by class id) but labels include {out_of_range}"
                )
        common = {"labels": labels, "zero_division": zero_division, "sample_weight": sample_weight}

        result = {}
        for average in _AVERAGES:
            precision, recall, f1, _ = precision_recall_fscore_support(
                references, predictions, average=average, **common
            )
            result[f"precision_{average}"] = float(precision)
            result[f"recall_{average}"] = float(recall)
            result[f"f1_{average}"] = float(f1)

        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, average=None, **common
        )
        result["per_class"] = {
            (label_names[label] if label_names is not None else label): {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s) if sample_weight is None else float(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, np.asarray(support))
        }
        return result

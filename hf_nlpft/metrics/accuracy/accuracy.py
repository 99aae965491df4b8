"""Accuracy: the share of predictions equal to their references (scikit-learn's `accuracy_score`)."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among all predictions:
(number of predictions equal to their reference) / (number of predictions).
Inputs are integer class ids.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    normalize (`bool`, defaults to `True`): if `False`, return the number of correct predictions instead of the share.
    sample_weight (`list[float]`, optional): per-example weights.
Returns:
    accuracy (`float`): share (or count, with `normalize=False`) of correct predictions.
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 0.75}
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
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
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

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        return {
            "accuracy": float(
                accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
            )
        }

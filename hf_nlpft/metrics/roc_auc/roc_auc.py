"""Area under the ROC curve: binary, or multi-class one-vs-rest; optionally the curve points themselves."""

import warnings

import datasets
import evaluate
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

_DESCRIPTION = """
ROC AUC is the area under the receiver operating characteristic curve (true-positive rate against
false-positive rate as the decision threshold moves): the probability that a random positive example is
scored above a random negative one. 1.0 is a perfect ranking, 0.5 is chance.

- Binary: `prediction_scores` is one score per example, the positive class's (class 1) probability;
  references are 0/1. Rows of two probabilities are accepted too (their second column is used).
- Multi-class: `prediction_scores` is one row of class probabilities per example (rows sum to 1, e.g. a
  softmax); references are class ids 0..C-1. The score is one-vs-rest, averaged over classes (macro by default).

AUC is undefined for a class with no reference examples (or, in the binary case, when only one of the two
classes occurs). By default this raises a ValueError that names the missing classes; pass
`undefined="nan"` to get NaN and a RuntimeWarning instead (useful inside training loops whose small eval sets
may lack a class).
"""

_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (`list[float]` or `list[list[float]]`): positive-class scores (binary) or rows of class
        probabilities (multi-class).
    references (`list[int]`): true class ids.
    average (`str`, defaults to `"macro"`): multi-class averaging over the one-vs-rest scores, `"macro"` or
        `"weighted"` (by class support). Ignored for binary inputs.
    return_curves (`bool`, defaults to `False`): also return `roc_curve`, {class id: {"fpr": [...], "tpr": [...]}}
        — one entry (class 1) for binary inputs, one per class (one-vs-rest) for multi-class inputs.
    undefined (`str`, defaults to `"raise"`): what to do when a class is missing from the references:
        `"raise"` (ValueError) or `"nan"` (warn, return NaN; the curve of a missing class is left out).
Returns:
    roc_auc (`float`), and `roc_curve` (`dict`) with `return_curves=True`.
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/roc_auc")
    >>> metric.compute(prediction_scores=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1])
    {'roc_auc': 0.75}
    >>> metric.compute(prediction_scores=[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], references=[0, 1, 2])
    {'roc_auc': 1.0}
"""

_CITATION = """
@article{fawcett2006roc,
  title={An introduction to ROC analysis},
  author={Fawcett, Tom},
  journal={Pattern Recognition Letters},
  volume={27},
  number={8},
  pages={861--874},
  year={2006}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RocAuc(evaluate.Metric):
    def _info(self):
        # Two input formats; evaluate picks the first that encodes the first example (a float score or a row).
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"prediction_scores": datasets.Value("float64"), "references": datasets.Value("int64")}
                ),
                datasets.Features(
                    {
                        "prediction_scores": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Value("int64"),
                    }
                ),
            ],
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.roc_auc_score.html"],
        )

    def _compute(self, prediction_scores, references, average="macro", return_curves=False, undefined="raise"):
        if undefined not in ("raise", "nan"):
            raise ValueError(f"undefined must be 'raise' or 'nan', got {undefined!r}")
        if average not in ("macro", "weighted"):
            raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")
        scores = np.asarray(prediction_scores, dtype=np.float64)
        references = np.asarray(references, dtype=np.int64)
        if scores.ndim == 2 and scores.shape[1] == 2:
            scores = scores[:, 1]  # two-column probabilities: binary, positive class = column 1
        if scores.ndim == 1:
            num_classes = 2
            if not np.isin(references, (0, 1)).all():
                raise ValueError(
                    "Binary ROC AUC needs 0/1 references (1 = the class whose probability is scored); "
                    f"got class ids {sorted(set(references.tolist()))}. Pass one probability row per example "
                    "for multi-class inputs."
                )
        elif scores.ndim == 2:
            num_classes = scores.shape[1]
            out_of_range = sorted(set(references.tolist()) - set(range(num_classes)))
            if out_of_range:
                raise ValueError(f"references include class ids {out_of_range} outside the {num_classes} score columns")
        else:
            raise ValueError(f"prediction_scores must be 1-D or 2-D, got shape {scores.shape}")

        present = set(references.tolist())
        missing = [c for c in range(num_classes) if c not in present]
        if missing:
            message = (
                f"ROC AUC is undefined: class id(s) {missing} never occur in the references "
                f"({len(references)} examples), so there are no positives (or no negatives) to rank."
            )
            if undefined == "raise":
                raise ValueError(message + " Pass undefined='nan' to get NaN instead.")
            warnings.warn(message + " Returning NaN.", RuntimeWarning, stacklevel=2)
            result = {"roc_auc": float("nan")}
        elif scores.ndim == 1:
            result = {"roc_auc": float(roc_auc_score(references, scores))}
        else:
            result = {
                "roc_auc": float(
                    roc_auc_score(
                        references, scores, multi_class="ovr", average=average, labels=list(range(num_classes))
                    )
                )
            }

        if return_curves:
            if scores.ndim == 1:
                columns = {1: (references == 1, scores)}
            else:
                columns = {c: (references == c, scores[:, c]) for c in range(num_classes)}
            curves = {}
            for label, (positives, column) in columns.items():
                if positives.all() or not positives.any():
                    continue  # only reached with undefined="nan": no curve for a class without positives/negatives
                fpr, tpr, _ = roc_curve(positives.astype(np.int64), column)
                curves[label] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
            result["roc_curve"] = curves
        return result

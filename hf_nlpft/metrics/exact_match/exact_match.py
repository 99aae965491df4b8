"""Exact match and position-wise token accuracy between generated and reference strings."""

import datasets
import evaluate

_DESCRIPTION = """
exact_match: the share of predictions equal to their reference, after optional normalisation
(whitespace: strip, and collapse every run of whitespace to one space; case: lowercase both sides).

token_accuracy: position-wise agreement of whitespace tokens: prediction token i counts as correct when it equals
reference token i. Correct tokens are summed over the corpus and divided by the total number of reference tokens
(missing prediction tokens count as wrong; extra ones are not counted). NaN when there are no reference tokens.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated strings.
    references (`list[str]`): reference strings.
    normalize_whitespace (`bool`, defaults to `True`): strip and collapse whitespace before exact_match
        (token_accuracy always splits on whitespace runs).
    ignore_case (`bool`, defaults to `False`): lowercase both sides first.
Returns:
    exact_match (`float`), token_accuracy (`float`): both in [0, 1].
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/exact_match")
    >>> metric.compute(predictions=["a b  c", "a x c d"], references=["a b c", "a b c"])
    {'exact_match': 0.5, 'token_accuracy': 0.8333333333333334}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, normalize_whitespace=True, ignore_case=False):
        def normalise(text):
            if ignore_case:
                text = text.lower()
            return " ".join(text.split()) if normalize_whitespace else text

        pairs = [(normalise(p), normalise(r)) for p, r in zip(predictions, references)]
        exact = sum(p == r for p, r in pairs) / len(pairs) if pairs else float("nan")

        correct = total = 0
        for prediction, reference in pairs:
            predicted_tokens, reference_tokens = prediction.split(), reference.split()
            correct += sum(p == r for p, r in zip(predicted_tokens, reference_tokens))
            total += len(reference_tokens)
        return {"exact_match": float(exact), "token_accuracy": correct / total if total else float("nan")}

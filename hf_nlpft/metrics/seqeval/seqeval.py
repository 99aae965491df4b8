"""Entity-level precision, recall and F1 for BIO-style tag sequences (NER, chunking), with the `seqeval` library."""

import warnings

import datasets
import evaluate
from seqeval import scheme as seqeval_schemes
from seqeval.metrics import accuracy_score, classification_report

_DESCRIPTION = """
seqeval scores sequence labelling at the entity (chunk) level: a predicted entity counts as correct only when
its type and its exact span match a reference entity. Precision, recall and F1 are micro-averaged over all
entities; `per_type` holds them for each entity type. `accuracy` is token-level (share of tags equal to the
reference tags).

Default mode is conlleval-compatible and lenient about ill-formed chunks (an `I-X` with no `B-X` before it
starts an entity). `mode="strict"` with a `scheme` (IOB2 when none is given) only counts entities that are
well-formed under that scheme.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[str]]`): predicted tags, one list per sequence.
    references (`list[list[str]]`): reference tags, one list per sequence (same lengths as the predictions).
    suffix (`bool`, defaults to `False`): tags carry the chunk marker as a suffix (`PER-B`) instead of a prefix.
    scheme (`str`, optional): tagging scheme for strict mode: "IOB1", "IOB2", "IOE1", "IOE2", "IOBES" or "BILOU".
    mode (`str`, optional): `"strict"` for strict matching under `scheme` (IOB2 by default); `None` for the
        default lenient conlleval behaviour.
    sample_weight (`list[float]`, optional): per-sequence weights.
    zero_division (`float`, defaults to `0`): value of a score whose denominator is zero.
Returns:
    precision, recall, f1 (`float`): micro-averaged over entities;
    accuracy (`float`): token-level accuracy;
    per_type (`dict`): {entity type: {"precision", "recall", "f1", "support"}}, support = number of reference
        entities of that type.
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/seqeval")
    >>> result = metric.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])
    >>> result["f1"], result["per_type"]["PER"]["support"]
    (1.0, 1)
"""

_CITATION = """
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  note={Software available from https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018},
}
@inproceedings{ramshaw-marcus-1995-text,
    title = "Text Chunking using Transformation-Based Learning",
    author = "Ramshaw, Lance and Marcus, Mitch",
    booktitle = "Third Workshop on Very Large Corpora",
    year = "1995",
    url = "https://www.aclweb.org/anthology/W95-0107",
}
"""

_SUMMARY_ROWS = ("micro avg", "macro avg", "weighted avg")
_SCHEMES = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")


def _check_nested(values, name):
    # With datasets>=4, `Sequence(Value("string"))` builds a `List` feature that evaluate's string check does not
    # recognise, so a flat list of tags would be silently split into characters ("B-PER" -> "B", "-", ...).
    if values is None:
        return
    for item in values:
        if isinstance(item, str):
            raise ValueError(
                f"{name} must be a list of tag sequences (list[list[str]]), got a list of strings starting "
                f"with {item!r}; wrap a single sequence in a list."
            )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            homepage="https://github.com/chakki-works/seqeval",
            codebase_urls=["https://github.com/chakki-works/seqeval"],
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    # evaluate appends `inputs_description` to the docstrings of `add_batch`/`add` on instantiation, so an
    # override needs a docstring of its own (a missing one is None, and `None += str` fails in `evaluate.load`).
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of tag sequences, refusing flat lists of tags (see `_check_nested`)."""
        _check_nested(predictions, "predictions")
        _check_nested(references, "references")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one tag sequence, refusing a bare string."""
        for value, name in ((prediction, "prediction"), (reference, "reference")):
            if isinstance(value, str):
                raise ValueError(f"{name} must be a list of tags, got the string {value!r}")
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self, predictions, references, suffix=False, scheme=None, mode=None, sample_weight=None, zero_division=0
    ):
        if mode not in (None, "default", "strict"):
            raise ValueError(f"mode must be None or 'strict', got {mode!r}")
        if mode == "strict" and scheme is None:
            scheme = "IOB2"
        scheme_class = None
        if scheme is not None:
            if scheme not in _SCHEMES:
                raise ValueError(f"Unknown scheme {scheme!r}; use one of {', '.join(_SCHEMES)}")
            scheme_class = getattr(seqeval_schemes, scheme)
        with warnings.catch_warnings():
            # with no entity at all, seqeval's unused macro average takes the mean of an empty array
            warnings.simplefilter("ignore", RuntimeWarning)
            report = classification_report(
                y_true=references,
                y_pred=predictions,
                suffix=suffix,
                output_dict=True,
                scheme=scheme_class,
                mode="strict" if mode == "strict" else None,
                sample_weight=sample_weight,
                zero_division=zero_division,
            )
        micro = report["micro avg"]
        return {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "accuracy": float(accuracy_score(y_true=references, y_pred=predictions)),
            "per_type": {
                entity_type: {
                    "precision": float(scores["precision"]),
                    "recall": float(scores["recall"]),
                    "f1": float(scores["f1-score"]),
                    "support": int(scores["support"]),
                }
                for entity_type, scores in report.items()
                if entity_type not in _SUMMARY_ROWS
            },
        }

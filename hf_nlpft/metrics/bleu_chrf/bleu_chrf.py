"""Corpus BLEU and chrF with sacreBLEU, for translation, summarisation and other generation tasks."""

import datasets
import evaluate
from sacrebleu.metrics import BLEU, CHRF

_DESCRIPTION = """
Corpus-level BLEU (Papineni et al., 2002) and chrF (Popović, 2015) computed with sacreBLEU, on sacreBLEU's
0-100 scale. BLEU is the geometric mean of modified n-gram precisions (n = 1..4) times a brevity penalty,
on sacreBLEU's tokenisation (`13a` by default; use `tokenize="zh"` for Chinese, `"char"` for character-level).
chrF is the character n-gram F-score (beta = 2); `chrf_word_order=2` gives chrF++.
Each prediction may have several references; all predictions must have the same number of them.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): system outputs.
    references (`list[str]` or `list[list[str]]`): one reference per prediction, or a list of references per
        prediction (the same number for each).
    tokenize (`str`, optional): sacreBLEU tokenizer for BLEU ("13a" by default; "zh", "char", "intl", "none", ...).
    lowercase (`bool`, defaults to `False`): lowercase both sides (BLEU and chrF).
    smooth_method (`str`, defaults to `"exp"`): BLEU smoothing ("none", "floor", "add-k", "exp").
    chrf_char_order (`int`, defaults to `6`), chrf_word_order (`int`, defaults to `0`), chrf_beta (`int`,
        defaults to `2`): chrF settings.
Returns:
    bleu (`float`), chrf (`float`): corpus scores on a 0-100 scale;
    bleu_precisions (`list[float]`): the n-gram precisions; brevity_penalty (`float`);
    sys_len, ref_len (`int`): hypothesis and (closest) reference lengths in tokens.
Examples:
    >>> metric = evaluate.load("/path/to/hf_nlpft/metrics/bleu_chrf")
    >>> result = metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])
    >>> result["bleu"], result["chrf"]
    (100.00000000000004, 100.0)
"""

_CITATION = """
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    url = "https://www.aclweb.org/anthology/W18-6319",
    pages = "186--191",
}
@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    url = "https://aclanthology.org/W15-3049",
    pages = "392--395",
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BleuChrf(evaluate.Metric):
    def _info(self):
        # The single-string form comes first: with datasets>=4 a `Sequence(Value("string"))` feature would accept
        # a plain string and split it into characters, so it must only be tried once the string form has failed.
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
            ],
            homepage="https://github.com/mjpost/sacrebleu",
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (all strings, or all lists of strings)."""
        # (The docstring is required: evaluate appends `inputs_description` to it on instantiation.)
        # The feature format is picked from the first example, so a batch mixing strings and lists of
        # references would be split into characters after the first list; refuse it up front.
        if references is not None and len(references) > 0:
            kinds = {isinstance(reference, str) for reference in references}
            if len(kinds) > 1:
                raise ValueError("references must be all strings or all lists of strings, not a mix")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        tokenize=None,
        lowercase=False,
        smooth_method="exp",
        chrf_char_order=6,
        chrf_word_order=0,
        chrf_beta=2,
    ):
        references = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
        counts = {len(reference) for reference in references}
        if len(counts) > 1:
            raise ValueError(
                f"every prediction needs the same number of references, got counts {sorted(counts)}"
            )
        if counts == {0}:
            raise ValueError("each prediction needs at least one reference")
        # sacreBLEU takes reference streams: stream k holds the k-th reference of every prediction
        streams = [list(stream) for stream in zip(*references)]

        bleu = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method).corpus_score(
            predictions, streams
        )
        chrf = CHRF(
            char_order=chrf_char_order, word_order=chrf_word_order, beta=chrf_beta, lowercase=lowercase
        ).corpus_score(predictions, streams)
        return {
            "bleu": float(bleu.score),
            "chrf": float(chrf.score),
            "bleu_precisions": [float(p) for p in bleu.precisions],
            "brevity_penalty": float(bleu.bp),
            "sys_len": int(bleu.sys_len),
            "ref_len": int(bleu.ref_len),
        }

"""Finding the misaligned pairs of two texts numbered by the same verse scheme.

Two Bible translations that share a versification on paper still disagree in places: one module keeps
its own (e.g. Hebrew) verse numbers in a few chapters, so its verses there sit one or more slots away
from the other's; elsewhere one merges two verses into one slot and leaves the other slot empty, or
adds text (a colophon, a disputed verse) the other lacks. :func:`filter_verse_pairs` keeps the pairs
that say the same thing and counts the dropped ones by rule, each pair falling to the first rule that
applies:

``missing``       the verse is empty or absent on either side.
``shifted``       the pair sits in a run of verses that match the other text better at another offset
                  (see below).
``length_ratio``  the two verses' character lengths differ by more than a factor of 2 from the corpus'
                  usual target/source ratio (merged or added verses).

The shift rule uses a bilingual lexicon learned from the pairs themselves (almost all are aligned):
source and target words that occur in at least 10 and at most 20 % of the verses and whose Dice
coefficient over verse co-occurrence is at least 0.5 ("god"/"dios", "king"/"rey"). The *coverage* of a
source verse by a target verse is the share of its lexicon words with a translation in the target
verse. For every pair and for offsets up to ±8 verses within the book, coverage is pooled over a window
of five verses (the pair and the two before it, around it, or after it); the pair is dropped as shifted
when, in one of these windows, some offset beats offset 0 by at least 0.2 and the pair's own verse
agrees (its source verse is covered better at that offset, or its target verse covers the source verse
at that offset better). A pair left alone between two shifted pairs is dropped too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

K = TypeVar("K", bound=Hashable)

RULES = ("missing", "shifted", "length_ratio")
MAX_OFFSET = 8  # verses
WINDOW = 2  # verses each side of the centre of a window of 2 * WINDOW + 1
SHIFT_MARGIN = 0.2  # coverage gain another offset needs over offset 0
MIN_WINDOW_VERSES = 3  # pairs a window needs at an offset to count
MAX_LENGTH_FACTOR = 2.0
LEXICON_MIN_DF, LEXICON_MAX_DF, LEXICON_MIN_DICE = 10, 0.2, 0.5


def filter_verse_pairs(
    order: Sequence[K],
    source: Mapping[K, str],
    target: Mapping[K, str],
    group: Callable[[K], Hashable],
) -> tuple[list[K], Counter[str]]:
    """Keys (in ``order``) whose source and target verses are aligned, and drop counts per rule.

    ``order`` lists every verse slot of the shared versification in canonical order (slots missing from
    a text included: they keep the offsets right); ``group`` gives a slot's book, across which no
    shift is looked for.
    """
    drops: Counter[str] = Counter({rule: 0 for rule in RULES})
    present = np.array([bool(source.get(key)) and bool(target.get(key)) for key in order])
    drops["missing"] = int(
        np.count_nonzero([key in source or key in target for key in order]) - present.sum()
    )
    source_texts = [source.get(key, "") for key in order]
    target_texts = [target.get(key, "") for key in order]

    groups = np.unique([group(key) for key in order], return_inverse=True)[1]
    coverage, word_counts = _coverage(source_texts, target_texts, present, groups)
    shifted = np.zeros(len(order), dtype=bool)
    boundaries = np.flatnonzero(np.diff(groups)) + 1
    for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, len(order)]):
        book = {offset: values[start:end] for offset, values in coverage.items()}
        shifted[start:end] = _shifted(book, word_counts[start:end])
    shifted &= present

    log_ratios = np.zeros(len(order))
    for index in np.flatnonzero(present):
        log_ratios[index] = math.log(len(target_texts[index]) / len(source_texts[index]))
    usual = float(np.median(log_ratios[present]))
    too_long = present & (np.abs(log_ratios - usual) > math.log(MAX_LENGTH_FACTOR))

    # A pair left between two dropped ones, one of them shifted, is most likely shifted too.
    dropped = shifted | too_long
    same_group_before = np.r_[False, groups[1:] == groups[:-1]]
    same_group_after = np.r_[groups[:-1] == groups[1:], False]
    dropped_before = same_group_before & np.r_[False, dropped[:-1]]
    dropped_after = same_group_after & np.r_[dropped[1:], False]
    shifted_beside = np.r_[False, shifted[:-1]] | np.r_[shifted[1:], False]
    shifted |= present & ~dropped & dropped_before & dropped_after & shifted_beside
    too_long &= ~shifted

    drops["shifted"] = int(shifted.sum())
    drops["length_ratio"] = int(too_long.sum())
    return [order[index] for index in np.flatnonzero(present & ~shifted & ~too_long)], drops


def _coverage(
    source_texts: list[str], target_texts: list[str], present: np.ndarray, groups: np.ndarray
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Per offset d, the coverage of each source verse i by target verse i + d (NaN where either is
    missing or i + d is outside i's group), and each source verse's number of lexicon words."""
    source_words = _lexicon_candidates(source_texts, present)
    target_words = _lexicon_candidates(target_texts, present)
    cooccurrence = (source_words[present].T @ target_words[present]).tocoo()
    source_df = np.asarray(source_words[present].sum(axis=0)).ravel()
    target_df = np.asarray(target_words[present].sum(axis=0)).ravel()
    dice = 2 * cooccurrence.data / (source_df[cooccurrence.row] + target_df[cooccurrence.col])
    chosen = dice >= LEXICON_MIN_DICE
    lexicon = sparse.csr_matrix(
        (np.ones(int(chosen.sum()), dtype=np.float32), (cooccurrence.row[chosen], cooccurrence.col[chosen])),
        shape=(source_words.shape[1], target_words.shape[1]),
    )
    translated = np.asarray(lexicon.sum(axis=1)).ravel() > 0
    # Per slot: the source verse's lexicon words, and the source words its target verse translates.
    source_lexicon_words = source_words[:, translated].tocsr()
    target_translates = (target_words @ lexicon[translated].T).tocsr()
    target_translates.data[:] = 1
    source_counts = np.asarray(source_lexicon_words.sum(axis=1)).ravel()

    slots = np.arange(len(source_texts))
    coverage = {}
    for offset in range(-MAX_OFFSET, MAX_OFFSET + 1):
        other = np.clip(slots + offset, 0, len(slots) - 1)
        valid = (other == slots + offset) & (groups[other] == groups) & present & present[other]
        valid &= source_counts > 0
        hits = np.asarray(source_lexicon_words.multiply(target_translates[other]).sum(axis=1)).ravel()
        coverage[offset] = np.where(valid, hits / np.maximum(source_counts, 1), np.nan)
    return coverage, source_counts


def _lexicon_candidates(texts: list[str], present: np.ndarray) -> sparse.csr_matrix:
    """Binary slot-by-word matrix of the words frequent enough in the aligned verses to be looked up."""
    words = CountVectorizer(binary=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float32).fit_transform(texts)
    df = np.asarray(words[present].sum(axis=0)).ravel()
    return words[:, (df >= LEXICON_MIN_DF) & (df <= LEXICON_MAX_DF * present.sum())].tocsr()


def _window_sum(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """Sum of ``values[i + low : i + high + 1]`` for every i (clipped at both ends)."""
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    slots = np.arange(len(values))
    return (
        cumulative[np.clip(slots + high + 1, 0, len(values))]
        - cumulative[np.clip(slots + low, 0, len(values))]
    )


def _shifted(coverage: dict[int, np.ndarray], word_counts: np.ndarray) -> np.ndarray:
    """The slots of one book whose pair is shifted (see the module docstring). A window pools the
    coverage of its verses weighted by their number of lexicon words, and only speaks when it has at
    least ``MIN_WINDOW_VERSES`` pairs at both offsets compared."""
    size = len(coverage[0])
    slots = np.arange(size)
    offsets = np.array([offset for offset in coverage if offset != 0])
    by_offset = np.vstack([coverage[offset] for offset in offsets])  # (offsets, slots)
    own_at_zero = np.nan_to_num(coverage[0], nan=0.0)
    shifted = np.zeros(size, dtype=bool)
    for low, high in ((-2 * WINDOW, 0), (-WINDOW, WINDOW), (0, 2 * WINDOW)):
        at_zero = _pooled(coverage[0], word_counts, low, high)
        others = np.vstack([_pooled(values, word_counts, low, high) for values in by_offset])
        choice = np.nan_to_num(others, nan=-1.0).argmax(axis=0)
        best = offsets[choice]
        better = others[choice, slots] - at_zero >= SHIFT_MARGIN  # False where either is NaN
        # The pair itself agrees: its source verse is covered better at the best offset, or its target
        # verse covers the source verse it would pair with at that offset better.
        own_source = np.nan_to_num(by_offset[choice, slots], nan=-1.0)
        partner = np.clip(slots - best, 0, size - 1)
        own_target = np.where(
            slots - best == partner, np.nan_to_num(by_offset[choice, partner], nan=-1.0), -1.0
        )
        shifted |= better & ((own_source > own_at_zero) | (own_target > own_at_zero))
    return shifted


def _pooled(values: np.ndarray, word_counts: np.ndarray, low: int, high: int) -> np.ndarray:
    """Window-pooled coverage; NaN where the window holds fewer than MIN_WINDOW_VERSES pairs."""
    valid = ~np.isnan(values)
    weights = np.where(valid, word_counts, 0.0)
    pooled = _window_sum(np.where(valid, values, 0.0) * weights, low, high) / np.maximum(
        _window_sum(weights, low, high), 1
    )
    return np.where(_window_sum(valid.astype(float), low, high) >= MIN_WINDOW_VERSES, pooled, np.nan)

"""Train a fresh subword (or character) tokenizer on a text corpus.

Every tokenizer produced here shares one RoBERTa-style layout of special tokens, so the same
template serves sequence classification (``<s>`` is the CLS position), masked LM (``<mask>``) and
causal LM (``<s>`` ... ``</s>`` are BOS/EOS)::

    <pad>=0  <s>=1 (bos, cls)  </s>=2 (eos, sep)  <unk>=3  <mask>=4
    single: <s> $A </s>          pair: <s> $A </s> </s> $B </s>

The normalizer applies NFKC (full-width ASCII such as ``１２月`` becomes ``12月``), then BERT's
cleanup (control characters dropped, whitespace unified, optional lowercasing; accents kept) and
collapses whitespace runs. For WordPiece and BPE it also surrounds every CJK ideograph with spaces,
so Chinese is split into characters as in BERT. Unigram and char skip that step: the unigram model
learns multi-character Chinese pieces itself (as SentencePiece does), and with BERT's spaces its
Metaspace pre-tokenizer would emit a lone "▁" before every ideograph, doubling sequence length;
the char model splits characters anyway.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
# Order fixes the ids: trainers insert special tokens first, in this order.
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, MASK)
TOKENIZER_MODELS: tuple[str, ...] = ("wordpiece", "bpe", "unigram", "char")

# Marks a piece that continues a word. BPE uses it too (instead of a "</w>" end-of-word suffix with
# BPEDecoder): decoding then goes through the WordPiece decoder, whose cleanup gives readable text
# ("Hello, world!" rather than "Hello , world !"). transformers 5 refuses its own decode-time cleanup
# for BPE models, so the backend decoder is the only place to do it.
WORDPIECE_PREFIX = "##"
# The character model keeps spaces as this visible token, so decode() restores word boundaries.
SPACE_SYMBOL = "▁"
# Texts handed to the trainer per batch; bounds memory while a large corpus streams through.
TRAIN_BATCH_SIZE = 1000


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    model: str = "wordpiece",
    lowercase: bool = False,
    min_frequency: int = 2,
    show_progress: bool = False,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    ``model`` is one of ``"wordpiece"`` (BERT-style ``##`` continuations), ``"bpe"`` (byte-pair
    merges, also marking continuations with ``##``), ``"unigram"`` (SentencePiece-style ``▁`` word
    starts) or ``"char"`` (one token per character; spaces kept as the ``▁`` token, so decoding
    restores the normalized text exactly). The subword models decode CJK text with a space between
    characters ("我 爱 北 京"), as BERT does.

    ``texts`` may be any iterable, including a generator over a large corpus: it is consumed once,
    in batches. ``min_frequency`` is ignored by ``"unigram"``, whose trainer has no such option.
    WordPiece and BPE keep every character of the corpus, so with a very large alphabet (Chinese)
    the vocabulary can exceed ``vocab_size``; size embedding matrices with ``len(tokenizer)``.
    Unigram instead raises ``ValueError`` when ``vocab_size`` cannot hold all characters.
    """
    _validate_arguments(texts, vocab_size, model, min_frequency, model_max_length)
    batches = _batched_texts(texts)

    backend = Tokenizer(_build_model(model))
    backend.normalizer = _build_normalizer(model, lowercase)
    backend.pre_tokenizer = _build_pre_tokenizer(model)
    backend.decoder = _build_decoder(model)
    trainer = _build_trainer(model, vocab_size, min_frequency, show_progress)
    try:
        backend.train_from_iterator(batches, trainer=trainer)
    except Exception as error:  # tokenizers raises a bare Exception
        if "not large enough to contain all chars" in str(error):
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the number of distinct characters in the corpus, "
                "which the unigram model must all keep; raise vocab_size or use model='wordpiece'/'bpe'."
            ) from error
        raise

    _check_special_ids(backend)
    backend.post_processor = _build_post_processor(backend)
    return _wrap(backend, model_max_length)


def _validate_arguments(
    texts: Iterable[str], vocab_size: int, model: str, min_frequency: int, model_max_length: int
) -> None:
    if model not in TOKENIZER_MODELS:
        raise ValueError(f"Unknown tokenizer model {model!r}; expected one of {', '.join(TOKENIZER_MODELS)}.")
    if isinstance(texts, str):
        # Iterating a str yields characters, which would silently train on single letters.
        raise TypeError("texts must be an iterable of strings, not a single string.")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the {len(SPECIAL_TOKENS)} special tokens "
            f"{list(SPECIAL_TOKENS)} alone need that many ids; use a vocab_size above {len(SPECIAL_TOKENS)}."
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}.")
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be >= 1, got {model_max_length}.")


def _batched_texts(texts: Iterable[str]) -> Iterator[list[str]]:
    """Group ``texts`` into lists for the trainer, failing early when there is no text at all.

    The first non-blank text is looked up eagerly so an empty corpus raises before training; the
    rest of the iterable is only read while the trainer consumes batches.
    """
    iterator = iter(texts)
    skipped: list[str] = []
    for text in iterator:
        _check_text(text)
        skipped.append(text)
        if text.strip():
            break
    else:
        raise ValueError(
            "No text to train the tokenizer on: the corpus is empty or contains only blank strings."
        )
    return _batches(itertools.chain(skipped, iterator))


def _batches(texts: Iterator[str]) -> Iterator[list[str]]:
    while batch := list(itertools.islice(texts, TRAIN_BATCH_SIZE)):
        for text in batch:
            _check_text(text)
        yield batch


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"texts must contain strings, got {type(text).__name__}: {text!r:.80}")


def _build_model(model: str) -> models.Model:
    if model == "wordpiece":
        return models.WordPiece(unk_token=UNK, continuing_subword_prefix=WORDPIECE_PREFIX)
    if model == "bpe":
        return models.BPE(unk_token=UNK, continuing_subword_prefix=WORDPIECE_PREFIX)
    if model == "unigram":
        return models.Unigram()
    return models.WordLevel(unk_token=UNK)


def _build_normalizer(model: str, lowercase: bool) -> normalizers.Normalizer:
    # Spaces around CJK ideographs only for the BERT-style models (see the module docstring).
    steps = [
        normalizers.NFKC(),
        normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=model in ("wordpiece", "bpe"),
            strip_accents=False,
            lowercase=lowercase,
        ),
        # Collapse whitespace so Metaspace/char models never see empty "words" between two spaces.
        normalizers.Replace(Regex(r"\s+"), " "),
        normalizers.Strip(),
    ]
    return normalizers.Sequence(steps)


def _build_pre_tokenizer(model: str) -> pre_tokenizers.PreTokenizer:
    if model in ("wordpiece", "bpe"):
        # Splits on whitespace and punctuation (and, after the normalizer, between CJK characters).
        return pre_tokenizers.BertPreTokenizer()
    if model == "unigram":
        return pre_tokenizers.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="always")
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="never", split=False),
            pre_tokenizers.Split(Regex("."), behavior="isolated"),
        ]
    )


def _build_decoder(model: str) -> decoders.Decoder:
    if model in ("wordpiece", "bpe"):
        # Joins "##" continuations and drops the spaces BertPreTokenizer put before punctuation
        # ("world !" -> "world!"), inside the backend so it survives save/load.
        return decoders.WordPiece(prefix=WORDPIECE_PREFIX, cleanup=True)
    if model == "unigram":
        return decoders.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="always")
    # Concatenate characters and turn the space symbol back into a space.
    return decoders.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="never", split=False)


def _build_trainer(model: str, vocab_size: int, min_frequency: int, show_progress: bool) -> trainers.Trainer:
    specials = list(SPECIAL_TOKENS)
    if model == "wordpiece":
        return trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            continuing_subword_prefix=WORDPIECE_PREFIX,
            show_progress=show_progress,
        )
    if model == "bpe":
        return trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            continuing_subword_prefix=WORDPIECE_PREFIX,
            show_progress=show_progress,
        )
    if model == "unigram":
        return trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=specials, unk_token=UNK, show_progress=show_progress
        )
    return trainers.WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        show_progress=show_progress,
    )


def _check_special_ids(backend: Tokenizer) -> None:
    # Guards the documented id layout that models and collators rely on (pad=0, bos=1, ...).
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual = backend.token_to_id(token)
        if actual != expected_id:
            raise RuntimeError(f"Special token {token!r} got id {actual}, expected {expected_id}.")


def _build_post_processor(backend: Tokenizer) -> processors.PostProcessor:
    bos_id, eos_id = backend.token_to_id(BOS), backend.token_to_id(EOS)
    # RoBERTa-style: every position has token type 0, so no model needs a token-type embedding.
    return processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
        special_tokens=[(BOS, bos_id), (EOS, eos_id)],
    )


def _wrap(backend: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    # add_bos_token/add_eos_token are deliberately not passed: in transformers 5 they make the
    # wrapper rebuild (and overwrite) the post-processor built above.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        cls_token=BOS,
        sep_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
        # Token type ids are all zero (see the template); leaving them out of the model inputs keeps
        # them from reaching forward() methods that do not accept them.
        model_input_names=["input_ids", "attention_mask"],
    )

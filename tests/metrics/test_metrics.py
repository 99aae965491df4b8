"""The metric modules load by path offline and agree with scikit-learn / seqeval / sacreBLEU; Trainer glue; plots."""

import math
import warnings

import evaluate
import numpy as np
import pytest
import sacrebleu
import seqeval.metrics
from seqeval.scheme import IOB2
from sklearn import metrics as skm

from hf_nlpft.metrics import (
    METRICS_DIR,
    available_metrics,
    classification_metrics,
    load_metric,
    make_classification_compute_metrics,
    make_token_classification_compute_metrics,
    token_classification_metrics,
)
from hf_nlpft.plots import plot_confusion_matrix, plot_roc_curves

NAMES = ["accuracy", "bleu_chrf", "exact_match", "precision_recall_f1", "roc_auc", "seqeval"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def metric():
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_metric(name)
        return loaded[name]

    return get


# --- loading -----------------------------------------------------------------------------------------------------


def test_available_metrics():
    assert available_metrics() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_module_loads_by_path_offline(name):
    module = evaluate.load(str(METRICS_DIR / name))
    assert isinstance(module, evaluate.Metric)
    assert type(module) is not evaluate.Metric  # the script's own subclass, not the base class
    assert module.name == name
    assert module.info.description and module.info.inputs_description


def test_load_metric_unknown_name_lists_available():
    with pytest.raises(ValueError, match="available metrics: accuracy, bleu_chrf"):
        load_metric("rouge")


# --- accuracy ----------------------------------------------------------------------------------------------------


def test_accuracy_matches_sklearn(metric):
    predictions, references = [0, 1, 2, 2, 1, 0, 1], [0, 1, 1, 2, 0, 0, 2]
    weights = [1, 2, 1, 1, 3, 1, 0.5]
    accuracy = metric("accuracy")
    assert accuracy.compute(predictions=predictions, references=references) == {"accuracy": 4 / 7}
    assert accuracy.compute(predictions=predictions, references=references, normalize=False)["accuracy"] == 4
    assert accuracy.compute(predictions=predictions, references=references, sample_weight=weights)[
        "accuracy"
    ] == pytest.approx(skm.accuracy_score(references, predictions, sample_weight=weights))


@pytest.mark.parametrize("name", ["accuracy", "precision_recall_f1"])
def test_class_id_metrics_refuse_scores(metric, name):
    # datasets would otherwise cast 0.7 -> 0 into the int64 feature and score truncated "ids"
    with pytest.raises(ValueError, match="integer class ids.*0.7"):
        metric(name).compute(predictions=np.array([1.0, 0.7, 0.1]), references=[0, 1, 0])
    assert metric(name).compute(predictions=np.array([0.0, 1.0]), references=[0, 1])  # integral floats are fine


# --- precision / recall / f1 -------------------------------------------------------------------------------------


def test_precision_recall_f1_matches_sklearn(metric):
    rng = np.random.default_rng(0)
    references = rng.integers(0, 4, size=60)
    predictions = np.where(rng.random(60) < 0.6, references, rng.integers(0, 4, size=60))
    names = ["a", "b", "c", "d"]
    result = metric("precision_recall_f1").compute(predictions=predictions, references=references, label_names=names)
    for average in ("micro", "macro", "weighted"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            references, predictions, average=average, zero_division=0
        )
        assert result[f"precision_{average}"] == pytest.approx(precision)
        assert result[f"recall_{average}"] == pytest.approx(recall)
        assert result[f"f1_{average}"] == pytest.approx(f1)
    assert result["f1_micro"] == pytest.approx(skm.accuracy_score(references, predictions))
    precision, recall, f1, support = skm.precision_recall_fscore_support(references, predictions, zero_division=0)
    assert list(result["per_class"]) == names
    for index, name in enumerate(names):
        assert result["per_class"][name] == pytest.approx(
            {"precision": precision[index], "recall": recall[index], "f1": f1[index], "support": support[index]}
        )


def test_precision_recall_f1_zero_division_and_labels(metric):
    prf = metric("precision_recall_f1")
    # class 2 is never predicted and never true; class 1 is never predicted: precision 0 (zero_division), no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = prf.compute(predictions=[0, 0, 0], references=[0, 1, 0], label_names=["x", "y", "z"])
    assert result["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # by hand: class x precision 2/3, recall 1, f1 0.8; macro over three classes
    assert result["precision_macro"] == pytest.approx((2 / 3) / 3)
    assert result["f1_macro"] == pytest.approx(0.8 / 3)
    # `labels` restricts scoring; without names the per-class keys are the ids
    subset = prf.compute(predictions=[0, 0, 0], references=[0, 1, 0], labels=[0])
    assert list(subset["per_class"]) == [0]
    assert subset["f1_macro"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="label_names"):
        prf.compute(predictions=[0, 3], references=[0, 1], labels=[0, 3], label_names=["x", "y"])


# --- ROC AUC -----------------------------------------------------------------------------------------------------


def test_roc_auc_binary(metric):
    roc = metric("roc_auc")
    # by hand: of the 4 (positive, negative) pairs, 3 rank the positive higher
    assert roc.compute(prediction_scores=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1]) == {"roc_auc": 0.75}
    rng = np.random.default_rng(1)
    references = rng.integers(0, 2, size=50)
    scores = np.clip(0.3 * references + rng.random(50) * 0.7, 0, 1)
    result = roc.compute(prediction_scores=scores, references=references, return_curves=True)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(references, scores))
    fpr, tpr, _ = skm.roc_curve(references, scores)
    assert list(result["roc_curve"]) == [1]
    np.testing.assert_allclose(result["roc_curve"][1]["fpr"], fpr)
    np.testing.assert_allclose(result["roc_curve"][1]["tpr"], tpr)
    # rows of two probabilities are read as binary (column 1 = positive class)
    rows = np.stack([1 - scores, scores], axis=1)
    assert roc.compute(prediction_scores=rows, references=references)["roc_auc"] == pytest.approx(result["roc_auc"])


def test_roc_auc_multiclass_ovr(metric):
    rng = np.random.default_rng(2)
    references = np.arange(40) % 4
    logits = rng.normal(size=(40, 4)) + 1.5 * np.eye(4)[references]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    roc = metric("roc_auc")
    result = roc.compute(prediction_scores=probabilities, references=references, return_curves=True)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(references, probabilities, multi_class="ovr"))
    weighted = roc.compute(prediction_scores=probabilities, references=references, average="weighted")
    assert weighted["roc_auc"] == pytest.approx(
        skm.roc_auc_score(references, probabilities, multi_class="ovr", average="weighted")
    )
    assert sorted(result["roc_curve"]) == [0, 1, 2, 3]
    fpr, tpr, _ = skm.roc_curve(references == 2, probabilities[:, 2])
    np.testing.assert_allclose(result["roc_curve"][2]["fpr"], fpr)
    np.testing.assert_allclose(result["roc_curve"][2]["tpr"], tpr)
    # by hand: a perfect ranking for every class
    perfect = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]
    assert roc.compute(prediction_scores=perfect, references=[0, 1, 2]) == {"roc_auc": 1.0}


def test_roc_auc_missing_class(metric):
    roc = metric("roc_auc")
    rows = [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]]
    with pytest.raises(ValueError, match=r"class id\(s\) \[2\] never occur"):
        roc.compute(prediction_scores=rows, references=[0, 1, 0])
    with pytest.raises(ValueError, match="undefined"):
        roc.compute(prediction_scores=[0.2, 0.9], references=[1, 1])
    with pytest.warns(RuntimeWarning, match="undefined"):
        result = roc.compute(prediction_scores=rows, references=[0, 1, 0], undefined="nan", return_curves=True)
    assert math.isnan(result["roc_auc"])
    assert sorted(result["roc_curve"]) == [0, 1]
    with pytest.raises(ValueError, match="0/1 references"):
        roc.compute(prediction_scores=[0.2, 0.9, 0.5], references=[0, 1, 2])


# --- seqeval -----------------------------------------------------------------------------------------------------


def test_seqeval_two_entity_example_by_hand(metric):
    # references hold PER (0-1) and LOC (3); the prediction finds PER only
    references = [["B-PER", "I-PER", "O", "B-LOC"]]
    predictions = [["B-PER", "I-PER", "O", "O"]]
    result = metric("seqeval").compute(predictions=predictions, references=references)
    assert result["precision"] == 1.0  # 1 of 1 predicted entity is right
    assert result["recall"] == 0.5  # 1 of 2 reference entities is found
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == 0.75  # 3 of 4 tags
    assert result["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_seqeval_strict_iob2(metric):
    references = [["B-PER", "I-PER", "O", "B-LOC"]]
    predictions = [["I-PER", "I-PER", "O", "B-LOC"]]  # PER starts with I-: ill-formed under IOB2
    seq = metric("seqeval")
    lenient = seq.compute(predictions=predictions, references=references)
    assert (lenient["precision"], lenient["recall"]) == (1.0, 1.0)  # conlleval: I- opens a chunk
    strict = seq.compute(predictions=predictions, references=references, mode="strict")
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)  # only LOC is a well-formed predicted entity
    assert strict == seq.compute(predictions=predictions, references=references, mode="strict", scheme="IOB2")
    with pytest.raises(ValueError, match="Unknown scheme"):
        seq.compute(predictions=predictions, references=references, mode="strict", scheme="BIO9")


def test_seqeval_matches_library(metric):
    references = [
        ["O", "B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"],
        ["B-LOC", "O", "B-MISC", "I-MISC", "O"],
        ["O", "O", "B-PER"],
    ]
    predictions = [
        ["O", "B-ORG", "O", "O", "B-PER", "I-PER", "O"],
        ["B-LOC", "O", "B-MISC", "I-MISC", "I-MISC"],
        ["B-LOC", "O", "B-PER"],
    ]
    seq = metric("seqeval")
    result = seq.compute(predictions=predictions, references=references)
    assert result["precision"] == pytest.approx(seqeval.metrics.precision_score(references, predictions))
    assert result["recall"] == pytest.approx(seqeval.metrics.recall_score(references, predictions))
    assert result["f1"] == pytest.approx(seqeval.metrics.f1_score(references, predictions))
    assert result["accuracy"] == pytest.approx(seqeval.metrics.accuracy_score(references, predictions))
    report = seqeval.metrics.classification_report(references, predictions, output_dict=True, zero_division=0)
    for entity_type in ("LOC", "MISC", "ORG", "PER"):
        assert result["per_type"][entity_type]["f1"] == pytest.approx(report[entity_type]["f1-score"])
        assert result["per_type"][entity_type]["support"] == report[entity_type]["support"]
    strict = seq.compute(predictions=predictions, references=references, mode="strict")
    assert strict["f1"] == pytest.approx(
        seqeval.metrics.f1_score(references, predictions, mode="strict", scheme=IOB2)
    )


def test_seqeval_refuses_flat_tag_list(metric):
    # a flat list would otherwise be split into characters by the datasets List feature
    with pytest.raises(ValueError, match="list of tag sequences"):
        metric("seqeval").compute(predictions=["B-PER", "O"], references=["B-PER", "O"])


# --- BLEU / chrF -------------------------------------------------------------------------------------------------


def test_bleu_chrf_matches_sacrebleu(metric):
    predictions = ["the cat sat on the mat", "a quick brown fox jumps", "hello there world"]
    references = ["the cat is on the mat", "the quick brown fox jumped", "hello world"]
    bleu_chrf = metric("bleu_chrf")
    result = bleu_chrf.compute(predictions=predictions, references=references)
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score)
    # several references per prediction: one sacreBLEU stream per reference position
    multi = [[reference, prediction.upper()] for reference, prediction in zip(references, predictions)]
    streams = [[refs[0] for refs in multi], [refs[1] for refs in multi]]
    result = bleu_chrf.compute(predictions=predictions, references=multi)
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, streams).score)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, streams).score)
    lowered = bleu_chrf.compute(predictions=predictions, references=multi, lowercase=True)
    assert lowered["bleu"] == pytest.approx(100.0) and lowered["chrf"] == pytest.approx(100.0)


def test_bleu_chrf_options_and_errors(metric):
    bleu_chrf = metric("bleu_chrf")
    predictions, references = ["我 爱 北京 天安门"], ["我爱北京天安门"]
    result = bleu_chrf.compute(predictions=["我爱北京天安门"], references=references, tokenize="zh")
    assert result["bleu"] == pytest.approx(100.0)
    assert result["sys_len"] == result["ref_len"] == 7  # zh tokenisation: one token per character
    chrf_pp = bleu_chrf.compute(predictions=predictions, references=references, chrf_word_order=2)
    assert chrf_pp["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references], word_order=2).score)
    with pytest.raises(ValueError, match="same number of references"):
        bleu_chrf.compute(predictions=["a b", "c d"], references=[["a b"], ["c d", "c e"]])
    with pytest.raises(ValueError, match="not a mix"):
        bleu_chrf.compute(predictions=["a b", "c d"], references=["a b", ["c d"]])


# --- exact match -------------------------------------------------------------------------------------------------


def test_exact_match_and_token_accuracy(metric):
    em = metric("exact_match")
    predictions, references = ["a b  c ", "a x c d", "A B"], ["a b c", "a b c", "a b"]
    result = em.compute(predictions=predictions, references=references)
    assert result["exact_match"] == pytest.approx(1 / 3)
    # tokens right: 3 + 2 (a, c; d is extra) + 0 = 5 of 3 + 3 + 2 reference tokens
    assert result["token_accuracy"] == pytest.approx(5 / 8)
    assert em.compute(predictions=predictions, references=references, normalize_whitespace=False)[
        "exact_match"
    ] == 0.0
    ignore_case = em.compute(predictions=predictions, references=references, ignore_case=True)
    assert ignore_case == pytest.approx({"exact_match": 2 / 3, "token_accuracy": 7 / 8})
    shorter = em.compute(predictions=["a"], references=["a b c d"])
    assert shorter == {"exact_match": 0.0, "token_accuracy": 0.25}


# --- Trainer glue ------------------------------------------------------------------------------------------------


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("num_labels", [2, 3])
def test_classification_metrics_from_logits(num_labels):
    rng = np.random.default_rng(num_labels)
    labels = np.arange(30) % num_labels
    logits = rng.normal(size=(30, num_labels)).astype(np.float32) + np.eye(num_labels)[labels]
    names = [f"class_{i}" for i in range(num_labels)]
    result = classification_metrics(logits, labels, names)
    predictions = logits.argmax(axis=1)
    probabilities = _softmax(logits.astype(np.float64))
    expected_auc = (
        skm.roc_auc_score(labels, probabilities[:, 1])
        if num_labels == 2
        else skm.roc_auc_score(labels, probabilities, multi_class="ovr")
    )
    expected = {
        "accuracy": skm.accuracy_score(labels, predictions),
        "precision_macro": skm.precision_score(labels, predictions, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(labels, predictions, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(labels, predictions, average="macro", zero_division=0),
        "f1_micro": skm.f1_score(labels, predictions, average="micro", zero_division=0),
        "f1_weighted": skm.f1_score(labels, predictions, average="weighted", zero_division=0),
        "roc_auc": expected_auc,
    }
    assert result == pytest.approx(expected)
    assert all(isinstance(value, float) for value in result.values())


def test_classification_metrics_missing_class_gives_nan_auc():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.5]])
    with pytest.warns(RuntimeWarning, match="undefined"):
        result = classification_metrics(logits, np.array([0, 1, 0]), ["a", "b", "c"])
    assert math.isnan(result["roc_auc"])
    assert result["accuracy"] == 1.0
    with pytest.raises(ValueError, match="label names"):
        classification_metrics(logits, np.array([0, 1, 0]), ["a", "b"])


def test_make_classification_compute_metrics_with_eval_prediction():
    from transformers import EvalPrediction

    logits = np.array([[2.0, 0.1], [0.3, 1.0], [0.9, 0.2], [0.1, 0.4]])
    labels = np.array([0, 1, 1, 1])
    compute_metrics = make_classification_compute_metrics(["neg", "pos"])
    # models with several outputs hand the Trainer a tuple; the logits come first
    hidden = np.zeros((4, 5))
    result = compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels))
    assert result == compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert result["accuracy"] == 0.75
    assert result["roc_auc"] == 1.0  # by hand: every positive has a higher pos-probability than the negative


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _one_hot_logits(ids):
    return np.eye(len(TAGS))[np.asarray(ids)] * 5.0


def test_token_classification_ignores_minus_100():
    # [CLS] Ann Lee visits Ro ##me [SEP] [PAD]: special tokens, continuations and padding carry -100
    labels = np.array(
        [
            [-100, 1, 2, 0, 3, -100, -100, -100],
            [-100, 3, 0, 1, -100, -100, -100, -100],
        ]
    )
    predicted_ids = np.array(
        [
            [1, 1, 2, 0, 3, 2, 4, 3],  # right wherever labelled; garbage (I-PER, I-LOC, B-LOC) under -100
            [3, 3, 0, 0, 2, 2, 1, 1],  # misses the PER of the second sentence
        ]
    )
    result = token_classification_metrics(_one_hot_logits(predicted_ids), labels, TAGS)
    # by hand: 4 reference entities (PER, LOC; LOC, PER), 3 predicted (PER, LOC; LOC), all 3 right
    assert result["precision"] == 1.0
    assert result["recall"] == 0.75
    assert result["f1"] == pytest.approx(6 / 7)
    assert result["accuracy"] == pytest.approx(6 / 7)  # 7 labelled tokens, 6 right
    assert set(result) == {"precision", "recall", "f1", "accuracy"}
    # argmax-ed ids (preprocess_logits_for_metrics) work as well
    assert token_classification_metrics(predicted_ids, labels, TAGS) == result
    # scoring the garbage positions too would change the result
    unmasked = np.where(labels == -100, 0, labels)
    assert token_classification_metrics(_one_hot_logits(predicted_ids), unmasked, TAGS) != result


def test_make_token_classification_compute_metrics():
    from transformers import EvalPrediction

    labels = np.array([[-100, 1, 2, 0, -100], [-100, 3, 4, -100, -100]])
    predicted_ids = np.array([[0, 2, 2, 0, 0], [0, 3, 4, 0, 0]])
    logits = _one_hot_logits(predicted_ids)
    lenient = make_token_classification_compute_metrics(TAGS)(EvalPrediction(predictions=(logits,), label_ids=labels))
    assert lenient == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 0.8}
    strict = make_token_classification_compute_metrics(TAGS, mode="strict")(
        EvalPrediction(predictions=logits, label_ids=labels)
    )
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)  # "I-PER I-PER" is no IOB2 entity
    with pytest.raises(ValueError, match="no position"):
        token_classification_metrics(logits, np.full(labels.shape, -100), TAGS)


# --- plots -------------------------------------------------------------------------------------------------------


def _assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_confusion_matrix(tmp_path):
    written = plot_confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1], ["neg", "neu", "pos"], tmp_path / "cm.png")
    assert written == tmp_path / "cm.png"
    _assert_png(written)


def test_plot_roc_curves_binary_and_multiclass(tmp_path):
    import matplotlib.pyplot as plt

    open_before = len(plt.get_fignums())
    binary = plot_roc_curves([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], ["neg", "pos"], tmp_path / "roc2.png")
    _assert_png(binary)
    rows = _softmax(np.random.default_rng(3).normal(size=(12, 3)))
    multi = plot_roc_curves(np.arange(12) % 3, rows, ["a", "b", "c"], tmp_path / "roc3.png")
    _assert_png(multi)
    assert plot_roc_curves([1, 1], [0.2, 0.9], ["neg", "pos"], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    assert len(plt.get_fignums()) == open_before  # figures are closed

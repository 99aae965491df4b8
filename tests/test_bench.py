"""The benchmark suite runs end to end (smoke shapes) and writes every field; no figure is asserted."""

import json
import math

import pytest

from hf_nlpft import bench
from hf_nlpft.cli import COMMANDS
from hf_nlpft.models.additive.modeling_nlpft_additive import fused_cpu_kernel


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "out" / "bench.json"
    exit_code = bench.main(["--mode", "smoke", "--output", str(output)])
    return exit_code, output


def test_smoke_run_succeeds_and_writes_json(smoke_results):
    exit_code, output = smoke_results
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["errors"] == {}
    assert exit_code == 0
    assert results["mode"] == "smoke"
    assert not list(output.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_every_top_level_field_is_a_finite_number(smoke_results):
    results = json.loads(smoke_results[1].read_text(encoding="utf-8"))
    for field in bench.TOP_LEVEL_FIELDS:
        value = results[field]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (field, value)
        assert math.isfinite(value), (field, value)


def test_attention_rows_cover_every_n_and_impl(smoke_results):
    results = json.loads(smoke_results[1].read_text(encoding="utf-8"))
    rows = results["attention"]
    for row in rows:
        assert set(bench.ATTENTION_ROW_FIELDS) <= set(row), row
    ns = bench.SIZES["smoke"]["attention"]["ns"]
    assert sorted({row["n"] for row in rows}) == sorted(ns)
    impls = ("sdpa", "fused", "recompute", "naive")
    assert {(row["n"], row["impl"]) for row in rows} == {(n, impl) for n in ns for impl in impls}
    kernel_missing = fused_cpu_kernel() is None
    for row in rows:  # smoke shapes are tiny: every case ran, in its own process (fused: where it builds)
        assert "error" not in row, row
        if "skipped" in row:
            assert row["impl"] == "fused" and kernel_missing, row
            continue
        assert row["ms"] > 0 and row["peak_mb"] >= 0
        assert row["time_vs_sdpa"] is not None
    assert all(row["time_vs_sdpa"] == 1.0 for row in rows if row["impl"] == "sdpa")


def test_goals_and_machine_facts(smoke_results):
    results = json.loads(smoke_results[1].read_text(encoding="utf-8"))
    goals = results["goals"]
    assert goals and all({"name", "value", "target", "met"} <= set(goal) for goal in goals)
    names = {goal["name"] for goal in goals}
    assert {"trainer_vs_hand_tokens_ratio", "lstm_mfu_fp32", "bf16_speedup", "generation_cache_speedup",
            "generation_tokens_per_s"} <= names
    machine = results["machine"]
    for key in ("torch", "threads", "cpu_model", "mkldnn_available", "date"):
        assert key in machine
    lm_rows = results["lm"]["rows"]
    assert {(row["cell"], row["path"]) for row in lm_rows} >= {("lstm", "trainer"), ("lstm", "hand"),
                                                                 ("gru", "trainer"), ("gru", "hand")}
    # The hand loop's optimizer is the Trainer's: same class, flags and weight-decay groups.
    assert all(row["same_optimizer_as_trainer"] for row in lm_rows if row["path"] == "hand")


def test_table_prints_every_measurement(smoke_results):
    results = json.loads(smoke_results[1].read_text(encoding="utf-8"))
    table = bench.format_table(results)
    for label in ("matmul fp32", "lm lstm fp32 trainer", "attention n=", "generation", "pipeline", "padding"):
        assert label in table


def test_flop_count_of_the_issue_model():
    # LSTM, embedding 256, hidden 512, 2 layers, vocab 8000: forward matmul FLOPs per token, by hand.
    forward = 2 * 4 * 512 * (256 + 512) + 2 * 4 * 512 * (512 + 512) + 2 * 512 * 256 + 2 * 256 * 8000
    assert bench.rnn_lm_flops_per_token("lstm", 8000, 256, 512, 2, training=False) == forward
    assert bench.rnn_lm_flops_per_token("lstm", 8000, 256, 512, 2) == 3 * forward


def test_cli_lists_bench_and_rejects_bad_flags():
    assert COMMANDS["bench"][0] == "hf_nlpft.bench"
    assert bench.build_parser().parse_args(["--quick"]).mode == "quick"
    with pytest.raises(SystemExit):
        bench.main(["--only", "nonsense"])

"""Scale-out checks that run on a CPU box: the Accelerate config files, and real 2-process DDP training.

* Every file in scripts/accelerate/ goes through Accelerate's own loader and launch-time validation (the code
  `accelerate launch --config_file FILE` runs before starting anything) and has the topology its name promises.
  The FSDP2 file's wrap policy is resolved against both model families. DeepSpeed files are only parsed:
  DeepSpeed itself is not needed for that, and is not installed here.
* Two processes × 4 examples (DDP over gloo, `--use_cpu`) train the same weights as one process × 8 examples.
  Why the global batches match: the Trainer's seeded sampler yields one permutation of the data in every
  process; Accelerate's default dataloader sharding (split_batches=False) cuts it into per-device batches and
  hands process r the batches r, r+2, r+4, ...; so step k of either setup sees permutation[8k : 8k+8]. The LM
  blocks all have the same length and no dropout is used, so DDP's mean of the two half-batch gradients equals
  the full-batch gradient up to float rounding. Not bit-exact: gloo all-reduce sums two partial gradients where
  one process sums all eight examples in one reduction, and Adam slightly amplifies rounding in tiny gradient
  components. Measured: weights differ by at most 7.9e-7 after 5 AdamW steps at lr 1e-2 (losses by ~1e-6),
  hence the tolerance of 1e-5. `--dataloader_drop_last` is not needed: 5 steps stay inside the first epoch.

Run by hand (the same flags, any launcher):
    torchrun --nproc_per_node 2 -m hf_nlpft pretrain ... --use_cpu --per_device_train_batch_size 4
    accelerate launch --config_file scripts/accelerate/cpu_ddp_2proc.yaml -m hf_nlpft pretrain ... --use_cpu
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from accelerate.utils.launch import prepare_multi_gpu_env
from safetensors.torch import load_file

import hf_nlpft

ACCELERATE_DIR = Path(__file__).resolve().parents[1] / "scripts" / "accelerate"

# file -> (distributed_type, num_processes, num_machines, mixed_precision)
EXPECTED = {
    "single_gpu.yaml": (DistributedType.NO, 1, 1, "bf16"),
    "multi_gpu_ddp.yaml": (DistributedType.MULTI_GPU, 8, 1, "bf16"),
    "multi_node_ddp.yaml": (DistributedType.MULTI_GPU, 16, 2, "bf16"),
    "fsdp2.yaml": (DistributedType.FSDP, 8, 1, "bf16"),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 8, 1, "bf16"),
    "deepspeed_zero3.yaml": (DistributedType.DEEPSPEED, 8, 1, "bf16"),
    "cpu_ddp_2proc.yaml": (DistributedType.MULTI_GPU, 2, 1, "no"),
}


def launch_args(name: str):
    """What `accelerate launch --config_file NAME train.py` sees after Accelerate's own validation."""
    args = launch_command_parser().parse_args(["--config_file", str(ACCELERATE_DIR / name), "train.py"])
    args, _, _ = _validate_launch_command(args)
    return args


def test_every_config_file_is_covered():
    assert sorted(path.name for path in ACCELERATE_DIR.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_file_loads_with_accelerate(name):
    path = ACCELERATE_DIR / name
    assert path.read_text(encoding="utf-8").startswith("# "), "each file opens with a comment saying when to use it"
    config = load_config_from_file(str(path))  # unknown keys or bad values raise here
    distributed_type, num_processes, num_machines, mixed_precision = EXPECTED[name]
    assert (config.distributed_type, config.num_processes, config.num_machines, config.mixed_precision) == (
        distributed_type, num_processes, num_machines, mixed_precision
    )
    args = launch_args(name)
    assert args.num_processes == num_processes
    assert args.multi_gpu == (distributed_type == DistributedType.MULTI_GPU)
    assert args.use_fsdp == (distributed_type == DistributedType.FSDP)
    assert args.use_deepspeed == (distributed_type == DistributedType.DEEPSPEED)
    if distributed_type == DistributedType.DEEPSPEED:
        assert config.deepspeed_config["zero_stage"] == int(name[-6])  # deepspeed_zero2/3.yaml
    assert config.use_cpu == (name == "cpu_ddp_2proc.yaml")


TINY_MODELS = {  # family -> (model, the layer class it declares in _no_split_modules)
    "rnn": (lambda: hf_nlpft.RnnForCausalLM(hf_nlpft.RnnConfig(vocab_size=50, embedding_size=8, hidden_size=8)),
            "RnnLayer"),
    "additive": (lambda: hf_nlpft.AdditiveAttentionForMaskedLM(hf_nlpft.AdditiveAttentionConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)),
        "AdditiveAttentionBlock"),
}


@pytest.mark.parametrize("family", sorted(TINY_MODELS))
def test_fsdp2_wraps_each_layer_of_both_families(family):
    """TRANSFORMER_BASED_WRAP without class names: Accelerate takes them from the model's `_no_split_modules`."""
    build, layer = TINY_MODELS[family]
    model = build()
    assert set(model._no_split_modules) == {layer}
    env = prepare_multi_gpu_env(launch_args("fsdp2.yaml"))  # the FSDP_* variables the launcher exports
    assert env["FSDP_VERSION"] == "2"
    # FULL_STATE_DICT: Trainer.save_model writes nothing at all with SHARDED_STATE_DICT, so the output folder
    # would have no model.safetensors and config.json.
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [type(module).__name__ for module in model.modules() if policy(module)]
    assert wrapped == [layer] * len(model.model.layers)


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
@pytest.mark.parametrize("family", sorted(TINY_MODELS))
def test_model_sharded_by_fsdp2_saves_its_own_remote_code(family, tmp_path):
    """FSDP2 swaps the model's class for torch's `FSDP<Name>`; without restore_model_class_name, save_pretrained
    copies torch's `_fsdp_*.py` files instead of `modeling_*.py` and names `_fsdp_init.FSDP<Name>` in auto_map.
    (On one CPU process with gloo: the Trainer itself falls back to DDP with --use_cpu, so FSDP2 is applied here
    by hand, as Accelerate does: each layer, then the model.)"""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    from hf_nlpft.distributed import restore_model_class_name

    build, layer = TINY_MODELS[family]
    model = build()
    own_class, modeling_file = type(model), Path(sys.modules[type(model).__module__].__file__).name
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        for block in model.model.layers:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        assert isinstance(model, FSDPModule)  # class FSDP<Name>, made in torch (once per class and process)
        restore_model_class_name(model)
        state_dict = {name: tensor.full_tensor() for name, tensor in model.state_dict().items()}
        model.save_pretrained(tmp_path, state_dict=state_dict)
    finally:
        torch.distributed.destroy_process_group()
    assert isinstance(model, own_class) and type(model).__name__ == own_class.__name__
    assert modeling_file in {path.name for path in tmp_path.iterdir()}
    assert not list(tmp_path.glob("_fsdp*.py"))
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == [own_class.__name__]
    assert set(config["auto_map"].values()) <= {f"{Path(modeling_file).stem}.{name}" for name in dir(
        sys.modules[own_class.__module__])} | {config["auto_map"]["AutoConfig"]}


# ---------------------------------------------------------------- 2 processes vs 1 process

STEPS = 5
ATOL = 1e-5  # measured 7.9e-7 (see the module docstring)
OFFLINE_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

needs_gloo = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend (torchrun)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A few hundred lines of varied text and a tokenizer trained once on them (so every run shares it)."""
    folder = tmp_path_factory.mktemp("ddp")
    rng = random.Random(0)
    words = ("the a cat dog runs sleeps market bank river news sport economy government team wins loses "
             "quickly slowly big small red blue today yesterday").split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) + "." for _ in range(400)]
    (folder / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    hf_nlpft.train_tokenizer(lines, vocab_size=100).save_pretrained(folder / "tokenizer")
    return folder


def pretrain(corpus: Path, name: str, launcher: list[str], per_device_batch: int) -> tuple[Path, str]:
    """Run `LAUNCHER -m hf_nlpft pretrain` (tiny LSTM clm, 5 steps); returns the output folder and stderr."""
    output_dir = corpus / name
    argv = [
        *launcher, "-m", "hf_nlpft", "pretrain", "--objective", "clm", "--arch", "rnn",
        "--config_overrides", "cell=lstm,embedding_size=16,hidden_size=16,num_layers=1,dropout=0",
        "--train_file", str(corpus / "train.txt"), "--tokenizer_name", str(corpus / "tokenizer"),
        "--block_size", "16", "--max_eval_samples", "8", "--max_steps", str(STEPS), "--learning_rate", "1e-2",
        "--seed", "3", "--per_device_train_batch_size", str(per_device_batch), "--per_device_eval_batch_size", "8",
        "--use_cpu", "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true",
        "--output_dir", str(output_dir),
    ]
    env = {**os.environ, **OFFLINE_ENV, "HF_DATASETS_CACHE": str(corpus / f"cache-{name}")}
    result = subprocess.run(argv, cwd=corpus, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir, result.stderr


def trainer_state(output_dir: Path) -> dict:
    return json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def single_process(corpus) -> Path:
    return pretrain(corpus, "one-process", [sys.executable], per_device_batch=8)[0]


@needs_gloo
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_cpu_processes_train_the_same_weights_as_one(corpus, single_process, launcher):
    port = str(free_port())
    command = {
        "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port],
        # the config file is `--multi_gpu --num_processes 2`; `--use_cpu` below keeps the Trainer on the CPU
        "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                       str(ACCELERATE_DIR / "cpu_ddp_2proc.yaml"), "--main_process_port", port],
    }[launcher]
    two_processes, stderr = pretrain(corpus, launcher, command, per_device_batch=4)  # about 25 s

    # Both processes ran: each logs its model, and an epoch took ceil(n / 8) steps (n / 4 on one process alone).
    assert stderr.count("Model: RnnForCausalLM") == 2
    samples = json.loads((two_processes / "train_results.json").read_text(encoding="utf-8"))["train_samples"]
    for state in (trainer_state(single_process), trainer_state(two_processes)):
        assert state["global_step"] == STEPS
        assert state["epoch"] == pytest.approx(STEPS / math.ceil(samples / 8))

    losses = [[entry["loss"] for entry in trainer_state(folder)["log_history"] if "loss" in entry]
              for folder in (single_process, two_processes)]
    assert len(losses[0]) == STEPS and losses[0][-1] < losses[0][0]  # it trained
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)

    one, two = load_file(single_process / "model.safetensors"), load_file(two_processes / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=ATOL, rtol=0, msg=name)

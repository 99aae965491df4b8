"""The `hf-nlpft` command: one subcommand per recipe, each a plain `main(argv)` in its own module."""

import importlib
import sys

COMMANDS = {  # name -> (module, one-line help)
    "pretrain": ("hf_nlpft.pretrain", "self-supervised pretraining: causal LM, masked LM or contrastive"),
    "finetune": ("hf_nlpft.finetune", "fine-tune on a task: text-classification, token-classification, srl"),
    "evaluate": ("hf_nlpft.evaluation", "score a fine-tuned model on a labelled split"),
    "predict": ("hf_nlpft.prediction", "add a fine-tuned model's predictions to a JSONL file"),
    "push": ("hf_nlpft.hub", "upload a trained model folder to the Hugging Face Hub"),
    "merge-adapter": ("hf_nlpft.adapters", "fold a LoRA adapter into its base model: a normal model folder"),
    "demo": ("hf_nlpft.demo", "the main job on built-in data (the README's first command)"),
    "corpora": ("hf_nlpft.data.corpora", "list the built-in corpora"),
    "bench": ("hf_nlpft.bench", "measure the hot paths against this machine's limits"),
}

USAGE = "usage: hf-nlpft <command> [arguments | recipe.yaml [overrides]]\n\ncommands:\n" + "\n".join(
    f"  {name:<14} {help_text}" for name, (_, help_text) in COMMANDS.items()
) + "\n\n`hf-nlpft <command> --help` lists a command's arguments (every TrainingArguments flag included)."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hf-nlpft: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from .checkpointing import TrainingInterrupted
    from .data.loading import DataError
    from .training import UsageError

    module = importlib.import_module(COMMANDS[command][0])
    try:
        return module.main(rest) or 0
    except UsageError as err:  # contradictory or impossible arguments: nothing was read or written
        print(f"hf-nlpft {command}: error: {err}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as err:
        print(f"hf-nlpft {command}: error: {err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:  # SIGINT/SIGTERM: stopped after a step, with a checkpoint to resume from
        print(f"hf-nlpft {command}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"hf-nlpft {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

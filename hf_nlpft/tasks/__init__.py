"""One module per fine-tuning task: columns, preprocessing, collator, metrics, reports and prediction."""

from .seq2seq import SemanticParsingTask, TranslationTask
from .srl import SrlTask
from .text_classification import TextClassificationTask
from .token_classification import TokenClassificationTask

TASKS = {
    task.name: task
    for task in (TextClassificationTask(), TokenClassificationTask(), SrlTask(), TranslationTask(), SemanticParsingTask())
}


def task_for_model(config) -> str:
    """The task a saved fine-tuned model was trained for, from its architecture and config."""
    if getattr(config, "nlpft_task", None) in TASKS:
        return config.nlpft_task
    architecture = (config.architectures or [""])[0]
    if architecture.endswith("ForConditionalGeneration"):
        return "translation"
    if architecture.endswith("ForSequenceClassification"):
        return "text-classification"
    if architecture.endswith("ForTokenClassification"):
        return "srl" if getattr(config, "use_predicate_indicator", False) else "token-classification"
    raise ValueError(f"Cannot tell the task of a {architecture or 'model without architectures'}; pass --task")

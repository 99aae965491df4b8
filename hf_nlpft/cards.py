"""Model cards: Hub metadata (with results as model-index) and a readable description, from `model_cards/`."""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE_DIRS = (
    Path(__file__).resolve().parent / "model_cards",  # installed wheel (package data)
    Path(__file__).resolve().parent.parent / "model_cards",  # source checkout / editable install
)

DEFAULT_LIMITATIONS = (
    "A small model trained on a single corpus: it reflects that corpus's topics, period, language and biases "
    "(news from one outlet and era, product reviews from one site), and it has not been evaluated outside "
    "the test split reported above. Do not use it for decisions about people."
)


def template_path(name: str = "model_card.md") -> Path:
    for folder in TEMPLATE_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"Model card template {name!r} not found in {[str(d) for d in TEMPLATE_DIRS]}")


def render_model_card(
    *,
    model,
    repo_id: str,
    auto_class: str,
    objective: str,
    task_type: str,
    dataset_name: str,
    data_description: str,
    tokenizer_description: str,
    results: dict[str, float],
    results_split: str = "validation",
    hyperparameters: dict | None = None,
    plots: list[str] | None = None,
    base_model: str | None = None,
    summary: str | None = None,
    pipeline_tag: str | None = None,
    language: list[str] | None = None,
    limitations: str = DEFAULT_LIMITATIONS,
) -> ModelCard:
    """A ModelCard whose YAML header is valid Hub metadata and whose body describes the model and its results."""
    config = model.config
    numeric = {name: value for name, value in results.items() if isinstance(value, (int, float))}
    eval_results = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split=results_split,
            metric_type=name,
            metric_name=name,
            metric_value=round(float(value), 6),
        )
        for name, value in numeric.items()
    ]
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        language=language,
        tags=["hf_nlpft", config.model_type, objective],
        datasets=[dataset_name],
        base_model=base_model if base_model and not Path(base_model).exists() else None,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    architecture = ", ".join(
        f"{key}={getattr(config, key)}"
        for key in ("cell", "bidirectional", "num_layers", "num_hidden_layers", "num_attention_heads",
                    "embedding_size", "hidden_size", "intermediate_size", "vocab_size")
        if hasattr(config, key)
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=repo_id,
        summary=summary or f"A `{config.model_type}` model trained with the {objective} objective on {dataset_name}.",
        model_type=config.model_type,
        architecture=architecture,
        model_class=type(model).__name__,
        num_parameters=f"{model.num_parameters():,}",
        tokenizer_description=tokenizer_description,
        base_model=base_model,
        objective=objective,
        data_description=data_description,
        hyperparameters=hyperparameters or {},
        results={name: f"{value:.4f}" for name, value in numeric.items()},
        plots=plots or [],
        auto_class=auto_class,
        repo_id=repo_id,
        limitations=limitations,
    )

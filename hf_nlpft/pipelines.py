"""`pipeline("translation")` and `pipeline("text2text-generation")` for encoder-decoder models.

Transformers 5 removed both tasks in favour of chat models; hf_nlpft registers them again, implemented on
`generate()`, so a saved `nlpft_rnn_seq2seq` folder works as `pipeline("translation", model=folder)`.
"""

from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers import pipelines as transformers_pipelines
from transformers.pipelines import PIPELINE_REGISTRY


class Text2TextGenerationPipeline(Pipeline):
    """Source text in, generated text out: `[{"generated_text": ...}]` per input (one per returned sequence)."""

    output_key = "generated_text"
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, inputs, **kwargs):
        results = super().__call__(inputs, **kwargs)
        # As in Transformers 4: a list of inputs gives a flat list when each input yields one sequence.
        if isinstance(inputs, list) and all(isinstance(r, list) and len(r) == 1 for r in results):
            return [r[0] for r in results]
        return results

    def _sanitize_parameters(self, truncation=None, max_length=None, **generate_kwargs):
        preprocess = {}
        if truncation is not None:
            preprocess["truncation"] = truncation
        if max_length is not None:
            preprocess["max_length"] = max_length
        return preprocess, generate_kwargs, {}

    def preprocess(self, text: str, truncation: bool = True, max_length: int | None = None):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{self.task} needs a non-empty string, got {text!r}")
        return self.tokenizer(text, return_tensors="pt", truncation=truncation, max_length=max_length)

    def _forward(self, model_inputs, **generate_kwargs):
        return {"output_ids": self.model.generate(**model_inputs, **generate_kwargs)}

    def postprocess(self, model_outputs):
        texts = self.tokenizer.batch_decode(model_outputs["output_ids"], skip_special_tokens=True)
        return [{self.output_key: text.strip()} for text in texts]


class TranslationPipeline(Text2TextGenerationPipeline):
    """Like text2text-generation, with the output under `translation_text` as in Transformers 4."""

    output_key = "translation_text"


def register_pipelines() -> None:
    for task, pipeline_class in (("text2text-generation", Text2TextGenerationPipeline), ("translation", TranslationPipeline)):
        transformers_pipelines.REMOVED_TASKS.pop(task, None)
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=AutoModelForSeq2SeqLM, type="text")

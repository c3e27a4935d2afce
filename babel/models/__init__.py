"""Model access: loading (embedded GGUF models or any Hugging Face model), the FFN view, hooks, surgery."""

from babel.models.loading import EMBEDDED, load_model, load_tokenizer, model_name

__all__ = ["EMBEDDED", "load_model", "load_tokenizer", "model_name"]

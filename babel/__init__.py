"""babel: multilingual expert-activation analysis of LLMs."""

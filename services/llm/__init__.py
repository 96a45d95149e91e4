"""The LLM service: speech recognition and a language model behind ``parley.v1.ConversationService``."""

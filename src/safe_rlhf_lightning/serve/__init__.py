"""Talking to a trained policy: a multi-turn chatbot (used by ``safe-rlhf-chat``)."""

from .chat import Chatbot, ChatError, GenerationSettings, Turn

__all__ = ["ChatError", "Chatbot", "GenerationSettings", "Turn"]

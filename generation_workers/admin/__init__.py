"""Admin of the generation stage, one module per area."""

from generation_workers.admin import generation, prompts

__all__ = ["generation", "prompts"]

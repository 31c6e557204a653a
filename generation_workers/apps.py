from django.apps import AppConfig


class GenerationWorkersConfig(AppConfig):
    name = "generation_workers"
    verbose_name = "Generation"

"""API of prompt sets and prompts."""

urlpatterns: list = []

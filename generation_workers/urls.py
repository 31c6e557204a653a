from generation_workers.apis import prompts

app_name = "generation"

urlpatterns = [*prompts.urlpatterns]

from generation_workers.apis import campaigns, configs, prompts

app_name = "generation"

urlpatterns = [*prompts.urlpatterns, *configs.urlpatterns, *campaigns.urlpatterns]

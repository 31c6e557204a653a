from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation_workers", "0002_candidate_leases_and_queues"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="promptset",
            name="build_queued_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0004_held_leases_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="pairbuild",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="pairbuild",
            name="run_token",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
    ]

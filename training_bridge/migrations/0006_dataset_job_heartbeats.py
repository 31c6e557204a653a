from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training_bridge", "0005_training_launchers"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetexport",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="datasetversion",
            name="freeze_heartbeat_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

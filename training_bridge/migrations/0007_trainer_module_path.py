"""The built-in trainer moved from `training_bridge.trainer` to `training_bridge.training.trainer`
(the app's sub-packages). A launcher definition whose argv runs it by module
(`python -m training_bridge.trainer ...`) or names a file in its folder gets the new path, so the
definitions stored before the move keep starting the trainer. Nothing else in argv changes."""

import re

from django.db import migrations

OLD_TO_NEW = [
    (re.compile(r"training_bridge\.trainer\b"), "training_bridge.training.trainer"),
    (re.compile(r"training_bridge/trainer\b"), "training_bridge/training/trainer"),
]
NEW_TO_OLD = [
    (re.compile(r"training_bridge\.training\.trainer\b"), "training_bridge.trainer"),
    (re.compile(r"training_bridge/training/trainer\b"), "training_bridge/trainer"),
]


def argv_rewritten(argv, rules):
    if not isinstance(argv, list):
        return argv
    out = []
    for item in argv:
        if isinstance(item, str):
            for pattern, replacement in rules:
                item = pattern.sub(replacement, item)
        out.append(item)
    return out


def _rewrite(apps, rules):
    launchers = apps.get_model("training_bridge", "TrainingLauncher")
    for launcher in launchers.objects.only("pk", "argv"):
        argv = argv_rewritten(launcher.argv, rules)
        if argv != launcher.argv:
            launchers.objects.filter(pk=launcher.pk).update(argv=argv)


def forwards(apps, schema_editor):
    _rewrite(apps, OLD_TO_NEW)


def backwards(apps, schema_editor):
    _rewrite(apps, NEW_TO_OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("training_bridge", "0006_dataset_job_heartbeats"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

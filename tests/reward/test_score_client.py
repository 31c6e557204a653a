"""The RL trainer's side: bench/scoring/score_client.py, a standard-library script run as its
own process, scores image files through the live API with the promoted model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from annotation.services.annotators import user_create
from config.roles import Role
from tests.reward.test_scoring_api import PROMPT, png
from training_bridge.training.trainer.checkpoint import reward_model_load

CLIENT = Path(__file__).resolve().parents[2] / "bench" / "scoring" / "score_client.py"
ROW = re.compile(r"^(\S+)\s+mean ([-+]\d+\.\d+)\s+std (\S+)\s+(\S+) v(\d+)")


@pytest.mark.django_db(transaction=True)
def test_the_outside_script_scores_image_files_with_the_promoted_model(
    live_server, register, builtin_folders, tmp_path
):
    # given a promoted model, an ML account for the trainer and three image files
    register(builtin_folders(0))
    register(builtin_folders(1), promote=True)
    user_create(username="grpo", password="grpo-pass-123", role=Role.ML)
    files = []
    for i in range(3):
        path = tmp_path / f"sample-{i}.png"
        path.write_bytes(png(60 + i))
        files.append(path)
    # when the script runs outside the platform (no Django, only the URL and the account)
    out = subprocess.run(
        [sys.executable, str(CLIENT), "--url", live_server.url, "--username", "grpo",
         "--password", "grpo-pass-123", "--prompt", PROMPT, *map(str, files)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    # then it prints each file's score from version 2, as the checkpoint scores it offline
    assert out.returncode == 0, out.stderr
    rows = [ROW.match(line).groups() for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == [p.name for p in files]
    assert {(r[3], r[4]) for r in rows} == {("spatial-rm", "2")}
    images = [p.read_bytes() for p in files]
    offline = reward_model_load(builtin_folders(1)).score([PROMPT] * 3, images)
    np.testing.assert_allclose([float(r[1]) for r in rows], [s.mean for s in offline], atol=1e-4)
    # and in the group form (as files) it prints the group's ranking
    grouped = subprocess.run(
        [sys.executable, str(CLIENT), "--url", live_server.url, "--username", "grpo",
         "--password", "grpo-pass-123", "--prompt", PROMPT, "--group-size", "3", "--top-k", "1",
         "--multipart", *map(str, files)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert grouped.returncode == 0, grouped.stderr
    best = max(range(3), key=lambda i: offline[i].mean)
    assert f"top [{best}]" in grouped.stdout

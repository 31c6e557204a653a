"""The left-right mirror augmentation: captions mirrored with the images, drawn per seed and
epoch, on by default only for the built-in backbone."""

from __future__ import annotations

import pytest

from training_bridge.training.trainer.augment import caption_mirror, mirror_mask
from training_bridge.training.trainer.config import config_parse


@pytest.mark.parametrize(
    ("caption", "mirrored"),
    [
        ("a cat to the left of a dog", "a cat to the right of a dog"),
        ("A bus on the right-hand side of a car", "A bus on the left-hand side of a car"),
        ("Left of the bowl; RIGHT of it a chair", "Right of the bowl; LEFT of it a chair"),
        ("the leftmost cup, moving rightwards", "the rightmost cup, moving leftwards"),
        ("a kite above a horse, between two cows", "a kite above a horse, between two cows"),
        ("a lefty copyright", "a lefty copyright"),
    ],
)  # fmt: skip
def test_a_mirrored_caption_swaps_left_and_right_and_nothing_else(caption, mirrored):
    assert caption_mirror(caption) == mirrored
    assert caption_mirror(mirrored) == caption


def test_the_mirror_draw_repeats_for_a_seed_and_epoch_and_changes_with_them():
    first = mirror_mask(1000, probability=0.5, seed=3, epoch=1)

    assert (first == mirror_mask(1000, probability=0.5, seed=3, epoch=1)).all()
    assert (first != mirror_mask(1000, probability=0.5, seed=3, epoch=2)).any()
    assert (first != mirror_mask(1000, probability=0.5, seed=4, epoch=1)).any()
    assert 400 < first.sum() < 600
    assert not mirror_mask(1000, probability=0.0, seed=3, epoch=1).any()
    assert mirror_mask(1000, probability=1.0, seed=3, epoch=1).all()


def test_the_mirror_is_on_by_default_for_the_builtin_backbone_only(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.json").write_text("{}")

    assert config_parse({}).hflip == 0.5
    assert config_parse({"backbone": "clip", "model_path": str(tmp_path)}).hflip == 0.0
    assert config_parse({"hflip": 0}).hflip == 0.0
    assert config_parse({}).as_json()["hflip"] == 0.5


def test_the_stored_config_names_hflip_only_where_it_can_differ_from_before(tmp_path):
    """clip and vlm runs mirror nothing, as every run did before `hflip`: their stored configs
    (and hashes) stay as they were; a built-in run stores it, even 0, since its default is 0.5
    and the trainer must read back what was asked."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.json").write_text("{}")
    clip = config_parse({"backbone": "clip", "model_path": str(tmp_path)}, check_paths=False)

    assert "hflip" not in clip.as_json()
    assert config_parse(clip.as_json(), check_paths=False).hflip == 0.0
    off = config_parse({"hflip": 0}).as_json()
    assert off["hflip"] == 0.0
    assert config_parse(off).hflip == 0.0

"""The built-in network's word-image matching loss (`match_loss`): what the config takes,
when the network gives the loss, and that it teaches which look a name has."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from generation_workers.backends.procedural import render
from tests.training.scenes import OBJECTS, WORDS, _spec
from tests.training.test_trainer import _lines, _train
from training_bridge.training.trainer.config import ConfigError, config_parse
from training_bridge.training.trainer.models.builtin import SHOWN, BuiltinNet, _matching_loss

SIZE = 64
STEPS = 160


def _scenes(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Captions and their procedural renders (uint8, N x H x W x 3), objects drawn at random."""
    rng = random.Random(seed)
    captions, images = [], []
    for index in range(count):
        subject, reference = rng.sample(OBJECTS, 2)
        relation = rng.choice(list(WORDS))
        data = render(
            _spec(subject, relation, reference), seed=seed * 1000 + index, width=SIZE,
            height=SIZE, fmt="png",
        )  # fmt: skip
        captions.append(f"a photo of a {subject} {WORDS[relation]} a {reference}")
        images.append(np.asarray(Image.open(io.BytesIO(data.encoded)).convert("RGB")))
    return captions, np.stack(images)


@pytest.fixture
def one_thread():
    """The same numbers on every machine of one kind: torch's CPU reductions at one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_word_is_trained_to_be_shown_exactly_where_it_is_in_the_image_caption():
    ids = torch.tensor([[5, 6, 0], [5, 7, 8]])  # two captions, 0 pads the first
    shown = torch.zeros(2, 2, 3, dtype=torch.bool)  # (image, caption, word)
    shown[0, 0, :2] = True  # image 0 (caption 0's) shows its words 5, 6
    shown[0, 1, 0] = True  # and caption 1's word 5
    shown[1, 1, :] = True  # image 1 shows caption 1's words 5, 7, 8
    shown[1, 0, 0] = True  # and caption 0's word 5
    right = torch.where(shown, 10.0, -10.0) + SHOWN
    wrong = -right + 2 * SHOWN
    padding_differs = right.clone()
    padding_differs[:, 0, 2] = -100.0  # a padding slot's presence counts for nothing

    assert _matching_loss(right, ids) < 1e-3
    assert _matching_loss(wrong, ids) > 9.0
    assert _matching_loss(padding_differs, ids) == _matching_loss(right, ids)


def _net(captions: list[str], match_loss: float) -> BuiltinNet:
    torch.manual_seed(3)
    return BuiltinNet.create(
        captions, head="gaussian", image_size=SIZE, max_text_length=32, match_loss=match_loss
    )


def test_the_builtin_backbone_matches_by_default_and_the_others_refuse_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.json").write_text("{}")
    assert config_parse({}).match_loss == 1.0
    assert config_parse({}).as_json()["match_loss"] == 1.0
    assert config_parse({"match_loss": 0}).match_loss == 0.0
    clip = config_parse({"backbone": "clip", "model_path": str(tmp_path)})
    assert clip.match_loss == 0.0
    assert "match_loss" not in clip.as_json()  # clip's stored config (and hash) as before
    assert config_parse(clip.as_json(), check_paths=False).match_loss == 0.0

    with pytest.raises(ConfigError) as caught:
        config_parse({"backbone": "clip", "model_path": str(tmp_path), "match_loss": 0.2})
    assert caught.value.field == "match_loss"
    with pytest.raises(ConfigError) as caught:
        config_parse({"match_loss": -0.5})
    assert (caught.value.field, caught.value.message.split(",")[0]) == (
        "match_loss", "must be a number from 0 to 100"
    )  # fmt: skip


def test_the_loss_comes_from_a_training_pass_once_and_never_from_scoring():
    captions, images = _scenes(8, seed=1)
    net = _net(captions, match_loss=0.5)
    text = net.texts_encode(captions, torch.device("cpu"))
    pixels = net.pixels(images, torch.device("cpu"))
    index = torch.arange(len(captions))

    net.train()
    net(text, pixels, index)
    loss = net.auxiliary_loss_pop()
    assert loss is not None and loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert net.embed.weight.grad.abs().sum() > 0  # it reaches the words' embeddings
    assert net.cnn[0][0].weight.grad.abs().sum() > 0  # and the image encoder
    assert net.auxiliary_loss_pop() is None  # taken: added once

    net.eval()
    with torch.no_grad():
        net(text, pixels, index)
    assert net.auxiliary_loss_pop() is None
    off = _net(captions, match_loss=0.0).train()
    off(text, pixels, index)
    assert off.auxiliary_loss_pop() is None


def _picks(net: BuiltinNet, captions: list[str], images: np.ndarray) -> float:
    """How often the two object names of an image's own caption are more present in it, on
    average, than those of a caption naming two other objects (every such pairing given)."""
    net.eval()
    cpu = torch.device("cpu")
    with torch.no_grad():
        text = net.texts_encode(captions, cpu)
        presence = net.words_presence(text, net.pixels(images, cpu))  # (N, B, T)
    named = [caption.split() for caption in captions]  # "a photo of a <subject> ... a <object>"
    objects = [(4, len(words) - 1) for words in named]
    score = [[float(presence[i, j, list(objects[j])].mean()) for j in range(len(captions))]
             for i in range(len(captions))]  # fmt: skip
    hits = [
        score[i][i] > score[i][j]
        for i in range(len(captions))
        for j in range(len(captions))
        if not {named[i][4], named[i][-1]} & {named[j][4], named[j][-1]}
    ]
    return sum(hits) / len(hits)


def test_matching_alone_teaches_the_network_which_look_each_name_has(one_thread):
    """Trained on the matching loss alone (no preference labels at all), the network finds an
    unseen scene's two objects by their names rather than two others, where it guessed before."""
    captions, images = _scenes(160, seed=2)
    held_captions, held_images = _scenes(32, seed=3)
    net = _net(captions + held_captions, match_loss=1.0)
    before = _picks(net, held_captions, held_images)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        net.train()
        batch = torch.randperm(len(captions), generator=generator)[:32].tolist()
        text = net.texts_encode([captions[i] for i in batch], torch.device("cpu"))
        pixels = net.pixels(images[batch], torch.device("cpu"))
        net(text, pixels, torch.arange(len(batch)))
        loss = net.auxiliary_loss_pop()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _picks(net, held_captions, held_images)

    assert 0.3 < before < 0.7
    assert after >= 0.7, (before, after)


def test_a_run_logs_the_matching_loss_beside_the_preference_loss(scenes_folder, tmp_path):
    _train(scenes_folder, tmp_path / "on", log_every_steps=1)
    _train(scenes_folder, tmp_path / "off", log_every_steps=1, match_loss=0)

    on = {line["name"] for line in _lines(tmp_path / "on") if "name" in line}
    off = {line["name"] for line in _lines(tmp_path / "off") if "name" in line}
    assert {"train/loss", "train/match_loss"} <= on
    assert "train/loss" in off and "train/match_loss" not in off

"""The vlm backbone (Qwen2-VL / Qwen2.5-VL + LoRA + a mean / log-std head) on a tiny
random-weight model built offline: training, the checkpoint, reloading it in the scorer and in
plain transformers + peft, the loss and its gradient, the config's checks."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import VENV_BIN
from tests.training.vlm_models import VLM_SMALL, tiny_vlm
from training_bridge.training.trainer.checkpoint import reward_model_load
from training_bridge.training.trainer.config import VLM_TARGET_MODULES, ConfigError, config_parse
from training_bridge.training.trainer.data import split_read, vote_share
from training_bridge.training.trainer.events import Events
from training_bridge.training.trainer.loop import train
from training_bridge.training.trainer.losses import uncertainty_loss
from training_bridge.training.trainer.models.vlm import folder_revision, lora_target_regex

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_vlm_folder(tmp_path_factory) -> Path:
    return tiny_vlm(tmp_path_factory)


def _train(folder: Path, out: Path, model: Path, **config) -> dict:
    events = Events(out)
    try:
        parsed = config_parse({**VLM_SMALL, "model_path": str(model), **config})
        return train(parsed, dataset_dir=folder, output_dir=out, events=events)
    finally:
        events.close()


def _png(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(tiny_vlm_folder, scenes_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm-run")
    summary = _train(scenes_folder, out, tiny_vlm_folder)
    return out, summary


def test_a_lora_run_trains_only_the_adapter_and_head_and_writes_the_checkpoint(
    trained,
    tiny_vlm_folder,
):
    out, summary = trained
    assert summary["backbone"] == "vlm" and summary["head"] == "gaussian"
    assert 0 < summary["trainable_parameters"] < summary["parameters"] / 10
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [x["value"] for x in lines if x.get("name") == "train/loss"]
    assert len(losses) == summary["steps"] > 1 and all(math.isfinite(v) for v in losses)
    checkpoint = out / "checkpoint"
    meta = json.loads((checkpoint / "reward_model.json").read_text())
    assert meta["backbone"] == "vlm" and meta["merged"] is False
    assert meta["base_model"]["path"] == str(tiny_vlm_folder.resolve())
    assert meta["base_model"]["revision"] == folder_revision(tiny_vlm_folder)
    assert meta["lora"]["r"] == 4 and meta["image_size"] == 56
    assert (checkpoint / "adapter" / "adapter_model.safetensors").is_file()
    adapter = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k and "visual" not in k for k in adapter)  # vision frozen
    head = load_file(str(checkpoint / "head.safetensors"))
    assert head["weight"].shape == (2, 64)  # mean and log std from the 64-wide hidden state
    assert (checkpoint / "processor" / "preprocessor_config.json").is_file()


def test_the_checkpoint_scores_as_at_the_end_of_training(trained, scenes_folder):
    out, _ = trained
    evaluation = json.loads((out / "evaluation.json").read_text())
    test = {p.pair_id: p for p in split_read(scenes_folder, fmt="parquet", split="test")}
    scorer = reward_model_load(out / "checkpoint")
    rows = evaluation["scores"][:6]
    captions = [test[r["pair_id"]].caption for r in rows for _ in (0, 1)]
    images = [getattr(test[r["pair_id"]], f"image_{i}") for r in rows for i in (0, 1)]
    scores = scorer.score(captions, images)
    expected = [(r[f"score_{i}"], r[f"std_{i}"]) for r in rows for i in (0, 1)]
    assert [(s.mean, s.std) for s in scores] == [
        (pytest.approx(m, abs=1e-4), pytest.approx(d, abs=1e-4)) for m, d in expected
    ]


def test_plain_transformers_and_peft_give_the_same_scores(trained, tiny_vlm_folder):
    # the snippet documented for users (docs/using-data-and-models.md, "VLM reward model")
    out, _ = trained
    checkpoint = out / "checkpoint"
    image = Image.open(io.BytesIO(_png(1)))
    prompt = "a red cube left of a blue ball"
    # --- snippet ---
    import json as json_

    from peft import PeftModel
    from safetensors.torch import load_file as load_
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    meta = json_.load(open(checkpoint / "reward_model.json"))
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(meta["base_model"]["path"])
    model = PeftModel.from_pretrained(model, checkpoint / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint / "processor")
    images = Qwen2VLImageProcessorPil.from_pretrained(checkpoint / "processor")
    head = load_(str(checkpoint / "head.safetensors"))
    side = meta["image_size"]
    pixels = images(images=[image.convert("RGB").resize((side, side), Image.BILINEAR)],
                    return_tensors="pt")  # fmt: skip
    tokens = int(pixels["image_grid_thw"][0].prod()) // 4  # merge 2 x 2
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": meta["instruction"].format(prompt=prompt)},
            ],
        }
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    text = text.replace("<|image_pad|>", "<|image_pad|>" * tokens)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    ids["mm_token_type_ids"] = (ids["input_ids"] == model.config.image_token_id).int()
    with torch.no_grad():
        hidden = model.get_base_model().model(**ids, **pixels).last_hidden_state[:, -1]
        mean, log_std = (hidden.float() @ head["weight"].T + head["bias"])[0]
    reward, std = float(mean), float(log_std.clamp(-7, 5).exp())
    # --- end of snippet ---
    served = reward_model_load(checkpoint).score([prompt], [_png(1)])[0]
    assert (reward, std) == (pytest.approx(served.mean, abs=1e-4),
                             pytest.approx(served.std, abs=1e-4))  # fmt: skip


def test_a_merged_checkpoint_scores_like_the_adapter(tiny_vlm_folder, scenes_folder, tmp_path):
    _train(scenes_folder, tmp_path / "merged", tiny_vlm_folder, merge_lora=True,
           head="scalar", loss="bradley_terry", grad_accum_steps=2)  # fmt: skip
    checkpoint = tmp_path / "merged" / "checkpoint"
    meta = json.loads((checkpoint / "reward_model.json").read_text())
    assert meta["merged"] is True and meta["head"] == "scalar"
    assert (checkpoint / "merged" / "model.safetensors").is_file()
    assert not (checkpoint / "adapter").exists()
    evaluation = json.loads((tmp_path / "merged" / "evaluation.json").read_text())
    test = {p.pair_id: p for p in split_read(scenes_folder, fmt="parquet", split="test")}
    row = evaluation["scores"][0]
    pair = test[row["pair_id"]]
    scores = reward_model_load(checkpoint).score([pair.caption] * 2, [pair.image_0, pair.image_1])
    assert [s.mean for s in scores] == [pytest.approx(row["score_0"], abs=1e-4),
                                        pytest.approx(row["score_1"], abs=1e-4)]  # fmt: skip
    assert scores[0].std is None


def test_a_changed_base_folder_is_refused_when_the_adapter_loads(
    trained,
    tiny_vlm_folder,
    tmp_path,
):
    import shutil

    out, _ = trained
    copy = tmp_path / "checkpoint"
    shutil.copytree(out / "checkpoint", copy)
    base = tmp_path / "base"
    shutil.copytree(tiny_vlm_folder, base)
    meta = json.loads((copy / "reward_model.json").read_text())
    meta["base_model"]["path"] = str(base)
    (copy / "reward_model.json").write_text(json.dumps(meta))
    assert reward_model_load(copy).score(["x"], [_png(2)])[0].std is not None  # same files
    (base / "generation_config.json").write_text("{}")
    with pytest.raises(ValueError, match="has changed since training"):
        reward_model_load(copy)


def test_the_uncertainty_loss_gradient_matches_finite_differences():
    torch.manual_seed(0)
    inputs = tuple(torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(4))
    target = torch.tensor([1.0, 0.0, 0.5, 0.8, 1.0], dtype=torch.float64)

    def loss(mean_0, mean_1, log_std_0, log_std_1):
        return uncertainty_loss(mean_0, mean_1, target, log_std_0, log_std_1)

    # torch.special.log_ndtr keeps float64 here, so the check is exact to 1e-6
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: uncertainty_loss(a, b, target, c, d).double(), inputs, eps=1e-6,
        atol=1e-5,
    )  # fmt: skip
    # and by hand, one coordinate: central difference of the value
    m0, m1, s0, s1 = (t.detach().clone() for t in inputs)
    m0.requires_grad_(True)
    loss(m0, m1, s0, s1).backward()
    h = 1e-6
    plus, minus = m0.detach().clone(), m0.detach().clone()
    plus[2] += h
    minus[2] -= h
    numeric = (loss(plus, m1, s0, s1) - loss(minus, m1, s0, s1)) / (2 * h)
    assert float(m0.grad[2]) == pytest.approx(float(numeric), rel=1e-6)
    # P(A over B) = Phi((mA - mB) / sqrt(sA^2 + sB^2)): a tie's loss is smallest at equal means
    z = torch.tensor([0.0], dtype=torch.float64)
    equal = uncertainty_loss(z, z, torch.tensor([0.5]), z, z)
    assert float(equal) == pytest.approx(math.log(2))


def test_soft_labels_are_the_vote_share_with_ties_counting_half():
    assert vote_share(3, 1, 0) == 0.75
    assert vote_share(1, 1, 2) == 0.5
    assert vote_share(0, 2, 1) == pytest.approx(1 / 6)
    assert vote_share(0, 0, 0) is None and vote_share(None, None, None) is None


def test_soft_labels_train_on_the_exports_vote_counts(tiny_vlm_folder, scenes_folder, tmp_path):
    pairs = split_read(scenes_folder, fmt="parquet", split="train")
    assert all(p.soft_label_0 is not None for p in pairs)
    summary = _train(scenes_folder, tmp_path, tiny_vlm_folder, soft_labels=True, epochs=1,
                     batch_size=16, gradient_checkpointing=False)  # fmt: skip
    assert summary["steps"] == math.ceil(len(pairs) / 16)


def test_vision_lora_targets_the_vision_blocks_too():
    language = lora_target_regex(("q_proj", "v_proj"), "frozen")
    both = lora_target_regex(("q_proj", "v_proj"), "lora")
    import re

    lm = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    vision = "base_model.model.model.visual.blocks.1.attn.qkv"
    vision_mlp = "base_model.model.model.visual.blocks.1.mlp.gate_proj"
    assert re.fullmatch(language, lm) and not re.fullmatch(language, vision)
    assert not re.fullmatch(language, vision_mlp)
    assert re.fullmatch(both, lm) and re.fullmatch(both, vision) and re.fullmatch(both, vision_mlp)


def test_vision_lora_trains_adapters_in_the_vision_tower(tiny_vlm_folder):
    from training_bridge.training.trainer.models.vlm import VlmNet

    config = config_parse({**VLM_SMALL, "model_path": str(tiny_vlm_folder), "vision": "lora"})
    net = VlmNet.from_config(config)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    assert any("visual" in n and "lora_" in n for n in names)
    assert any("language_model" in n and "lora_" in n for n in names)
    assert net._base().is_activation_checkpointing  # gradient_checkpointing defaults to true


def _torchrun(tmp_path: Path, out: str, scenes_folder: Path, config: dict) -> Path:
    (tmp_path / f"{out}.json").write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node", "2", "-m", "training_bridge.training.trainer",
         "--dataset-dir", str(scenes_folder), "--output-dir", str(tmp_path / out),
         "--config", str(tmp_path / f"{out}.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / out


def test_torchrun_trains_the_vlm_with_ddp_and_with_fsdp_to_the_same_weights_on_cpu(
    tiny_vlm_folder, scenes_folder, tmp_path
):
    config = {**VLM_SMALL, "model_path": str(tiny_vlm_folder), "device": "cpu",
              "grad_accum_steps": 2, "epochs": 2}  # fmt: skip
    ddp = _torchrun(tmp_path, "ddp", scenes_folder, config)
    fsdp = _torchrun(tmp_path, "fsdp", scenes_folder, {**config, "distributed": "fsdp"})

    train_pairs = len(split_read(scenes_folder, fmt="parquet", split="train"))
    for out in (ddp, fsdp):
        summary = json.loads((out / "summary.json").read_text())
        assert summary["steps"] == 2 * math.ceil(math.ceil(train_pairs / 2) / 8)  # half per rank
    # the sharded run's gathered adapter and head are the replicated run's, and score alike
    for name in ("adapter/adapter_model.safetensors", "head.safetensors"):
        a, b = (load_file(str(out / "checkpoint" / name)) for out in (ddp, fsdp))
        assert a.keys() == b.keys() and a
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-5), key
    scores = [
        reward_model_load(out / "checkpoint").score(["a red cube left of a ball"], [_png(4)])[0]
        for out in (ddp, fsdp)
    ]
    assert scores[0].mean == pytest.approx(scores[1].mean, abs=1e-4)
    assert scores[0].std == pytest.approx(scores[1].std, abs=1e-4)


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"model_path": ""}, "model_path", "needs a local transformers folder"),
        ({"model_path": "/no/such/folder"}, "model_path", "no such folder"),
        ({"lora_rank": 0}, "lora_rank", "must be an integer from 1"),
        ({"lora_alpha": "big"}, "lora_alpha", "must be a number"),
        ({"lora_dropout": 1.5}, "lora_dropout", "must be a number from 0"),
        ({"lora_target_modules": []}, "lora_target_modules", "non-empty list"),
        ({"lora_target_modules": ["q_proj;rm"]}, "lora_target_modules", "module names"),
        ({"vision": "full"}, "vision", "unknown value 'full'"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing", "true or false"),
        ({"grad_accum_steps": 0}, "grad_accum_steps", "must be an integer from 1"),
        ({"image_size": 50}, "image_size", "multiple of 28"),
        ({"image_size": 448, "max_pixels": 200000}, "image_size", "outside min_pixels"),
        ({"min_pixels": 10}, "min_pixels", "must be an integer from 784"),
        ({"head": "scalar", "loss": "uncertainty"}, "loss", "needs the gaussian head"),
        ({"loss": "hinge"}, "loss", "unknown value 'hinge'"),
        ({"soft_labels": True, "dataset_format": "webdataset"}, "soft_labels", "Parquet"),
        ({"merge_lora": 1}, "merge_lora", "true or false"),
        ({"distributed": "zero3"}, "distributed", "unknown value 'zero3'"),
        ({"distributed": "fsdp", "merge_lora": True}, "merge_lora", "sharded (fsdp)"),
    ],
)
def test_a_bad_vlm_config_names_the_key(config, field, message, tiny_vlm_folder):
    raw = {"backbone": "vlm", "model_path": str(tiny_vlm_folder), **config}
    with pytest.raises(ConfigError) as caught:
        config_parse(raw)

    assert caught.value.field == field
    assert message in caught.value.message


@pytest.mark.parametrize("key", ["lora_rank", "loss", "vision", "merge_lora"])
def test_the_vlm_keys_are_refused_for_the_other_backbones(key):
    with pytest.raises(ConfigError) as caught:
        config_parse({"backbone": "builtin", key: 1})
    assert caught.value.field == key and "only the vlm backbone" in caught.value.message


def test_a_folder_of_another_model_family_is_refused(tiny_clip_folder):
    with pytest.raises(ConfigError, match="qwen2_vl or qwen2_5_vl") as caught:
        config_parse({"backbone": "vlm", "model_path": str(tiny_clip_folder)})
    assert caught.value.field == "model_path"


def test_the_vlm_config_round_trips_through_its_json(tiny_vlm_folder):
    config = config_parse({"backbone": "vlm", "model_path": str(tiny_vlm_folder)})
    data = config.as_json()
    assert data["lora_target_modules"] == list(VLM_TARGET_MODULES)
    assert (data["head"], data["loss"], data["image_size"]) == ("gaussian", "uncertainty", 448)
    assert config_parse(data, check_paths=False) == config
    assert "lora_rank" not in config_parse({"backbone": "builtin"}).as_json()


def test_the_qwen2_vl_family_trains_and_saves_too(tmp_path):
    from training_bridge.training.trainer.models import model_load
    from training_bridge.training.trainer.models.vlm import VlmNet
    from training_bridge.training.trainer.models.vlm_tiny import vlm_tiny_build

    folder = vlm_tiny_build(tmp_path / "qwen2-vl", family="qwen2_vl", tie_word_embeddings=True)
    config = config_parse({**VLM_SMALL, "model_path": str(folder)})
    net = VlmNet.from_config(config)
    arrays = np.stack([net.transform()(_png(seed)) for seed in (5, 6)])
    text = net.texts_encode(["a cup above a plate"], torch.device("cpu"))
    mean, log_std = net(text, net.pixels(arrays, torch.device("cpu")), torch.tensor([0, 0]))
    uncertainty_loss(mean[:1], mean[1:], torch.tensor([1.0]), log_std[:1], log_std[1:]).backward()
    assert net.reward_head.weight.grad is not None
    net.save(tmp_path / "checkpoint")
    again = model_load(tmp_path / "checkpoint")
    assert (
        json.loads((tmp_path / "checkpoint" / "reward_model.json").read_text())["base_model"][
            "model_type"
        ]
        == "qwen2_vl"
    )
    net.eval()
    with torch.no_grad():
        first = net(text, net.pixels(arrays, torch.device("cpu")), torch.tensor([0, 0]))[0]
        second = again(text, again.pixels(arrays, torch.device("cpu")), torch.tensor([0, 0]))[0]
    assert torch.allclose(first, second, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_vlm_folder):
    from training_bridge.training.trainer.models.vlm import VlmNet

    grads = []
    for checkpointing in (True, False):
        torch.manual_seed(0)
        config = {**VLM_SMALL, "model_path": str(tiny_vlm_folder), "lora_dropout": 0.0,
                  "gradient_checkpointing": checkpointing}  # fmt: skip
        net = VlmNet.from_config(config_parse(config)).train()
        for name, parameter in net.named_parameters():  # LoRA B starts at 0: give it values
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.02)
        arrays = np.stack([net.transform()(_png(seed)) for seed in (7, 8)])
        text = net.texts_encode(["a lamp right of a sofa"], torch.device("cpu"))
        mean, log_std = net(text, net.pixels(arrays, torch.device("cpu")), torch.tensor([0, 0]))
        loss = uncertainty_loss(mean[:1], mean[1:], torch.tensor([1.0]), log_std[:1], log_std[1:])
        loss.backward()
        assert net._base().is_activation_checkpointing is checkpointing
        grads.append({n: p.grad for n, p in net.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name

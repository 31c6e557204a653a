"""GPU memory of a vlm LoRA run, estimated from the model's shapes (an estimate until measured:
bench/gpu/vlm.py prints it beside the measured peak).

    .venv/bin/python bench/gpu/memory_estimate.py            # the table for docs/architecture.md
    .venv/bin/python bench/gpu/memory_estimate.py --batches 8,16,32,64 --tokenizer both

Counted (bytes of tensors, what `torch.cuda.max_memory_allocated` sees; the CUDA context, cuBLAS
workspaces and the allocator's fragmentation come on top, about 1-2 GiB in nvidia-smi):
- weights: every parameter in bf16 (the embeddings and the untied LM head included: the trainer
  loads the whole *ForConditionalGeneration, though it reads the last hidden state);
- LoRA: r * (in + out) per target module (q, k, v, o, gate, up, down of every decoder layer),
  kept in fp32 by peft (its adapters are cast to fp32 over a bf16 base), with an fp32 gradient
  and AdamW's two fp32 moments: 16 bytes a parameter;
- checkpointed inputs: with gradient checkpointing each decoder layer keeps only its input
  (tokens x hidden, bf16) for the backward pass;
- one layer's working set: the layer recomputed in the backward pass (norm outputs, q/k/v/o,
  the MLP's four intermediate tensors, LoRA's dropout copies of its inputs) plus about a third
  more for the gradients flowing through it, per token; without checkpointing every layer keeps
  it at once;
- the vision tower is frozen and runs without autograd: its activations are transient and
  smaller than the language model's backward pass (not added).

Tokens: a 448 px image is (448 / 28)^2 = 256 tokens; the instruction, prompt and chat template
take about 80 tokens with Qwen's tokenizer (counted by words and punctuation: a ~430-character
text) and 336 with the bench's byte-level tokenizer (one token per byte, counted); a batch of B
pairs is 2B sequences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training_bridge.training.trainer.models.vlm_tiny import QWEN_SHAPES  # noqa: E402

GIB = 1024**3
IMAGE_TOKENS = (448 // 28) ** 2
TEXT_TOKENS = {"qwen tokenizer": 80, "bench tokenizer": 336}
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
BACKWARD_FACTOR = 4 / 3


def _dims(shape: dict) -> dict[str, int]:
    hidden = shape["hidden_size"]
    head = hidden // shape["num_attention_heads"]
    kv = head * shape["num_key_value_heads"]
    inter = shape["intermediate_size"]
    return {"hidden": hidden, "kv": kv, "inter": inter}


def parameters(shape: dict) -> dict[str, int]:
    d = _dims(shape)
    h, kv, inter = d["hidden"], d["kv"], d["inter"]
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h
    embed = shape["vocab_size"] * h
    language = shape["num_hidden_layers"] * layer + embed * (
        1 if shape.get("tie_word_embeddings") else 2
    ) + h  # fmt: skip
    vh, vi = shape["vision_hidden_size"], shape["vision_intermediate_size"]
    block = (vh * 3 * vh + 3 * vh) + (vh * vh + vh) + 3 * (vh * vi) + 2 * vi + vh + 2 * vh
    merger = vh + (4 * vh) ** 2 + 4 * vh + 4 * vh * h + h
    vision = shape["vision_depth"] * block + 3 * 2 * 14 * 14 * vh + merger
    return {"language": language, "vision": vision, "total": language + vision}


def lora_parameters(shape: dict, rank: int) -> int:
    d = _dims(shape)
    h, kv, inter = d["hidden"], d["kv"], d["inter"]
    ins_outs = {"q": (h, h), "k": (h, kv), "v": (h, kv), "o": (h, h), "gate": (h, inter),
                "up": (h, inter), "down": (inter, h)}  # fmt: skip
    per_layer = sum(rank * (i + o) for i, o in (ins_outs[t] for t in LORA_TARGETS))
    return shape["num_hidden_layers"] * per_layer


def layer_bytes_per_token(shape: dict) -> float:
    """What autograd keeps of one decoder layer per token (bf16): its recomputed activations."""
    d = _dims(shape)
    h, kv, inter = d["hidden"], d["kv"], d["inter"]
    kept = (
        6 * h  # norms' outputs, attention output, o_proj output, residuals
        + (h + 2 * kv)
        + (h + kv)  # q, k, v and the rotated q, k
        + 4 * inter  # gate, up, act(gate), act(gate) * up
        + (3 * h + h + 2 * h + inter)  # LoRA dropout copies of each target's input
    )
    return kept * 2.0


def estimate(shape: dict, *, batch_pairs: int, text_tokens: int, rank: int = 32,
             checkpointing: bool = True) -> dict[str, float]:  # fmt: skip
    tokens = 2 * batch_pairs * (IMAGE_TOKENS + text_tokens)
    weights = parameters(shape)["total"] * 2
    lora = lora_parameters(shape, rank) * 16
    saved = layer_bytes_per_token(shape) * tokens
    gradients = saved * (BACKWARD_FACTOR - 1.0)  # in flight through the layer being undone
    layers = shape["num_hidden_layers"]
    if checkpointing:
        kept = layers * tokens * shape["hidden_size"] * 2
        layer = saved + gradients
        activations = kept + layer
    else:
        kept, layer = 0, 0.0
        activations = layers * saved + gradients
    total = weights + lora + activations
    return {"tokens": tokens, "weights": weights / GIB, "lora_adam": lora / GIB,
            "checkpointed": kept / GIB, "layer": layer / GIB,
            "activations": activations / GIB, "total": total / GIB}  # fmt: skip


def table(
    batches: tuple[int, ...] = (8, 16), tokenizers: tuple[str, ...] = tuple(TEXT_TOKENS)
) -> str:
    rows = ["| model | batch (pairs) | tokens | checkpointing | bf16 weights | LoRA r=32 + grads + "
            "AdamW (fp32) | kept layer inputs | one layer's backward | total (GiB) |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("qwen2.5-vl-3b", "qwen2.5-vl-7b"):
        shape = QWEN_SHAPES[name]
        for batch in batches:
            for tokenizer in tokenizers:
                text = TEXT_TOKENS[tokenizer]
                for checkpointing in (True, False):
                    if not checkpointing and (tokenizer != "qwen tokenizer" or batch != 8):
                        continue
                    e = estimate(shape, batch_pairs=batch, text_tokens=text,
                                 checkpointing=checkpointing)  # fmt: skip
                    rows.append(
                        f"| {name} | {batch} | {e['tokens']:,} ({tokenizer}) | "
                        f"{'on' if checkpointing else 'off'} | {e['weights']:.1f} | "
                        f"{e['lora_adam']:.2f} | {e['checkpointed']:.2f} | "
                        f"{e['layer'] if checkpointing else e['activations']:.2f}"
                        f"{'' if checkpointing else ' (all layers)'} | **{e['total']:.1f}** |"
                    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU memory of a vlm LoRA run, estimated")
    parser.add_argument("--batches", default="8,16", help="batch sizes in pairs")
    parser.add_argument("--tokenizer", choices=("qwen", "bench", "both"), default="both")
    args = parser.parse_args(argv)
    try:
        batches = tuple(int(b) for b in args.batches.split(","))
    except ValueError:
        parser.error(f"--batches: a comma-separated list of integers, got {args.batches!r}")
    tokenizers = {"qwen": ("qwen tokenizer",), "bench": ("bench tokenizer",),
                  "both": tuple(TEXT_TOKENS)}[args.tokenizer]  # fmt: skip
    for name in ("qwen2.5-vl-3b", "qwen2.5-vl-7b"):
        shape = QWEN_SHAPES[name]
        count = parameters(shape)
        sys.stdout.write(
            f"{name}: {count['total'] / 1e9:.2f} B parameters (language "
            f"{count['language'] / 1e9:.2f} B, vision {count['vision'] / 1e9:.3f} B), LoRA r=32 "
            f"{lora_parameters(shape, 32) / 1e6:.1f} M\n"
        )
    sys.stdout.write(table(batches, tokenizers) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

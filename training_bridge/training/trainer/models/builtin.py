"""The built-in backbone, trained from scratch: a small convolutional image encoder and a GRU
text encoder, joined by text-guided spatial attention.

Why this shape: a spatial prompt is right when the objects it names sit where its relations
say. The text side (a bidirectional GRU over words) pools the caption into a few slots (word
attention: one slot learns to read the subject, another the object...). Each slot queries the
image's feature map (a CoordConv CNN, so every position knows its x and y); the attention
gives where the slot's object is (an expected x, y), how present it is, and how well it
matches. An MLP reads the caption vector, the slots' positions, their pairwise offsets and
their match scores and gives the reward (and with the gaussian head, its log std).
About 0.2M parameters: it trains on CPU in minutes on procedural images.

The matching loss (`match_loss`, on by default): a preference pair tells the network which
of two images is right, and only a swapped or mirrored pair says which blob is which object, so
from preferences alone the binding of a name to its look is learnt late, in jumps, and a run
that misses it for a few objects stays there (bench/loop/RESULTS.md, issue 20). Every pair
also says something simpler: its images show the objects its caption names, and mostly not
those the batch's other captions name. So in training every word of every caption, as a query
(the same projection a slot's query goes through), is asked whether it is present in each
caption's image, by the attention's presence figure, and the answer is trained to be yes
exactly where the word is in that image's caption (a weakly labelled grounding of each word).
It costs one more attention of the batch's words over one image per caption (no second pass
through the CNN) and nothing at scoring time.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from training_bridge.training.trainer.data import ImageTransform
from training_bridge.training.trainer.models.base import RewardNet, head_split
from training_bridge.training.trainer.text import WordTokenizer, vocabulary_build

WEIGHTS = "model.safetensors"


def _coords(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(2, H, W): x then y, each from -1 (left / top) to 1."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])


# the presence (a logit) at which a word counts as shown: about that of an object-sized patch
# (a twentieth of the positions) at cosine 0.45 to the word's query, at the starting temperature
SHOWN = 1.0


def _matching_loss(presence: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every word of every caption (ids (B, T), 0 padding) being shown
    in caption n's image, by its presence there (N=B, B, T): yes exactly where the word is in
    caption n."""
    shown = (ids.view(1, *ids.shape, 1) == ids.view(ids.shape[0], 1, 1, -1)).any(-1)
    loss = F.binary_cross_entropy_with_logits(
        presence - SHOWN, shown.float(), reduction="none"
    )  # fmt: skip
    words = ids.ne(0).unsqueeze(0).expand_as(loss)
    return loss[words].mean()


def _conv(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    )


class BuiltinNet(RewardNet):
    backbone = "builtin"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        vocabulary: list[str],
        *,
        head: str,
        image_size: int,
        max_text_length: int,
        slots: int = 4,
        word_dim: int = 64,
        hidden: int = 64,
        dim: int = 64,
        channels: int = 32,
        match_loss: float = 0.0,
    ) -> None:
        super().__init__()
        self.head = head
        self.match_weight = match_loss  # training only: not part of the saved architecture
        self._match_loss: torch.Tensor | None = None
        self.image_size = image_size
        self.arch = {
            "slots": slots, "word_dim": word_dim, "hidden": hidden, "dim": dim,
            "channels": channels,
        }  # fmt: skip
        self.tokenizer = WordTokenizer(vocabulary, max_text_length)
        text_dim = 2 * hidden
        self.embed = nn.Embedding(len(vocabulary), word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        # word attention peaked from the start (unit-scale queries), and a slot reads the
        # attended words' own embeddings beside their GRU states: object names map to image
        # queries directly, which is what lets the text-image binding start to learn
        self.word_queries = nn.Parameter(torch.randn(slots, text_dim))
        self.slot_query = nn.Linear(text_dim + word_dim, dim)
        self.cnn = nn.Sequential(
            _conv(5, 16, stride=2),
            _conv(16, channels, stride=2),
            _conv(channels, channels),
            _conv(channels, channels, dilation=2),
        )
        # keys and values of every position: one matrix product (a 1x1 conv is slower on CPU)
        self.keys_values = nn.Linear(channels + 2, 2 * dim)
        # cosine attention with a learnt temperature: peaked from the first step, so where a
        # slot looks differs between the two images and the gradient has something to follow
        self.temperature = nn.Parameter(torch.tensor(8.0))
        self.pairs = list(itertools.combinations(range(slots), 2))
        features = text_dim + slots * 4 + len(self.pairs) * 2
        self.mlp = nn.Sequential(
            nn.Linear(features, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, 2 if head == "gaussian" else 1),
        )
        self.dim = dim

    @classmethod
    def create(
        cls,
        captions: list[str],
        *,
        head: str,
        image_size: int,
        max_text_length: int,
        match_loss: float = 0.0,
    ) -> BuiltinNet:
        return cls(
            vocabulary_build(captions),
            head=head,
            image_size=image_size,
            max_text_length=max_text_length,
            match_loss=match_loss,
        )

    def transform(self) -> ImageTransform:
        return ImageTransform(size=self.image_size, mode="square")

    def texts_encode(self, captions: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        encoded = [self.tokenizer.encode(caption) for caption in captions]
        length = max(len(ids) for ids in encoded)
        ids = torch.zeros(len(encoded), length, dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        lengths = torch.tensor([len(tokens) for tokens in encoded], dtype=torch.long)
        return {"ids": ids.to(device), "lengths": lengths}

    def _text(
        self, text: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The caption vector (B, 2H), the slots (B, K, 2H + E) and every word as a slot would
        read it alone (B, T, 2H + E)."""
        ids, lengths = text["ids"], text["lengths"]
        embedded = self.embed(ids)
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, last = self.gru(packed)
        tokens, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        sentence = torch.cat([last[0], last[1]], dim=-1)
        mask = ids.ne(0)
        logits = torch.einsum("btd,kd->bkt", tokens, self.word_queries)
        logits = logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
        words = torch.cat([tokens, embedded], dim=-1)
        slots = torch.einsum("bkt,btd->bkd", logits.softmax(dim=-1), words)
        return sentence, slots, words

    def _image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every position's key and value (N, P, D), and the positions' x, y (2, P)."""
        n, _, height, width = images.shape
        coords = _coords(height, width, images.device).expand(n, -1, -1, -1)
        feature = self.cnn(torch.cat([images, coords], dim=1))
        small = _coords(feature.shape[2], feature.shape[3], images.device)
        feature = torch.cat([feature, small.expand(n, -1, -1, -1)], dim=1)
        keys, values = self.keys_values(feature.flatten(2).transpose(1, 2)).chunk(2, dim=-1)
        return keys, values, small.flatten(1)

    def forward(
        self, text: dict[str, torch.Tensor], images: torch.Tensor, text_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        sentence, slots, words = self._text(text)
        keys, values, positions = self._image(images)
        queries = self.slot_query(slots)  # (B, K, D), a row per caption
        query = queries[text_index]  # (N, K, D); keys, values: (N, P, D)
        keys_unit = F.normalize(keys, dim=-1)
        logits = torch.einsum("nkd,npd->nkp", F.normalize(query, dim=-1), keys_unit)
        logits = logits * self.temperature
        if self.training and self.match_weight > 0:
            # one image per caption is enough (a pair's two images show the same objects)
            first = torch.full_like(queries[:, 0, 0], len(text_index), dtype=torch.long)
            rows = torch.arange(len(text_index), device=text_index.device)
            first.scatter_reduce_(0, text_index, rows, reduce="amin")
            presence = self._presence(words, keys_unit[first])
            self._match_loss = self.match_weight * _matching_loss(presence, text["ids"])
        attention = logits.softmax(dim=-1)
        location = torch.einsum("nkp,cp->nkc", attention, positions)  # (N, K, 2)
        presence = torch.logsumexp(logits, dim=-1) - math.log(logits.shape[-1])
        attended = torch.einsum("nkp,npd->nkd", attention, values)
        match = (attended * query).sum(-1) / math.sqrt(self.dim)
        offsets = [location[:, i] - location[:, j] for i, j in self.pairs]
        parts = [sentence[text_index], location.flatten(1), presence, match, *offsets]
        return head_split(self.mlp(torch.cat(parts, dim=1)), self.head)

    def _presence(self, words: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(N, B, T): how present every word (B, T, 2H + E), as a slot's query, is in every
        image (unit keys (N, P, D)): the forward pass's presence figure, for all pairings."""
        queries = F.normalize(self.slot_query(words), dim=-1)
        (b, t, d), (n, p, _) = queries.shape, keys.shape
        logits = (keys.reshape(n * p, d) @ queries.reshape(b * t, d).T).view(n, p, b, t)
        return torch.logsumexp(logits * self.temperature, dim=1) - math.log(p)

    def words_presence(self, text: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """(N, B, T): every caption word's presence in every image, what the matching loss
        trains."""
        _, _, words = self._text(text)
        keys, _, _ = self._image(images)
        return self._presence(words, F.normalize(keys, dim=-1))

    def auxiliary_loss_pop(self) -> torch.Tensor | None:
        loss, self._match_loss = self._match_loss, None
        return loss

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()
        }
        save_file(state, str(folder / WEIGHTS))
        meta: dict[str, Any] = {
            **self.meta(),
            "format": 1,
            "image_size": self.image_size,
            "max_text_length": self.tokenizer.max_length,
            "arch": self.arch,
            "vocabulary": self.tokenizer.vocabulary,
        }
        (folder / "reward_model.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> BuiltinNet:
        net = cls(
            meta["vocabulary"],
            head=meta["head"],
            image_size=meta["image_size"],
            max_text_length=meta["max_text_length"],
            **meta["arch"],
        )
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
        return net.eval()

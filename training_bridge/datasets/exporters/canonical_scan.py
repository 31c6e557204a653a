"""Flat fields of canonical record lines, read from their bytes without a JSON parser.

A canonical line is `json.dumps(record, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` of what `record_build` returns, so its keys always come in one order. In a
line without a backslash, `":` only ever ends a key (a quote inside a string is escaped), so the
positions of `":` are the line's keys in order: the first ones (`HEAD`) and the last ones
(`TAIL`) have fixed names, with the prompt's free-form `structure` between them, and each value
lies between its key and the next key. Finding them takes a few numpy passes over the bytes of
a chunk and one `take` that copies every value out, instead of a tokenizer run over every byte
of every record (why: the side-by-side figures in bench/export/RESULTS.md).

Checks, per line: the key count, each key used by the last bytes of its name, the first key at
the line's start and the `}}` at its end, each string value by its closing quote (a value
followed directly by the next key is one JSON value, so one that ends in `"` is a string and
one that ends in `]` an array), each number by its cast. A line that fails one, or has a
backslash (an escaped character, so `":` may sit inside a string), is parsed by pyarrow's JSON
reader instead (`canonical_parsed.fields_parsed`); both give equal arrays, which the tests
check on awkward records and on records built by `record_build` (so a change of the record's
keys shows there).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training_bridge.datasets.exporters.arrow_values import bool_array, int64_array, literal

VOTES = ("a", "b", "tie", "both_wrong", "skip")
_CANDIDATE_KEYS = (
    "campaign_id", "height", "id", "key", "model", "num_perturbations", "perturbation_type",
    "prompt_id", "prompt_text", "seed", "sha256", "width",
)  # fmt: skip
# The keys of a canonical line up to the prompt's `structure`, and from the prompt's `text` on.
HEAD = (
    "agreement", "agrees_with_intended", "annotator_ids", "candidates",
    *_CANDIDATE_KEYS, *_CANDIDATE_KEYS,
    "confidence", "gold", "intended_winner", "judged_at", "kind", "label",
    "num_example_per_prompt", "num_perturbations", "num_votes", "pair_id", "perturbation_type",
    "prompt", "group_key", "id", "num_perturbations", "objects", "parent_id",
    "perturbation_type", "relations", "structure",
)  # fmt: skip
TAIL = (
    "text", "tier", "queue_id", "settled", "split", "votes", "a", "b", "both_wrong", "skip", "tie",
)  # fmt: skip
# Keys that open an object (`{"name"`); every other key used follows a comma.
_FIRST_IN_OBJECT = {("head", 0), ("head", 4), ("head", 16), ("head", 40), ("tail", 6)}

_C0, _C1 = 4, 16  # where each candidate's keys start in HEAD
# field: ((HEAD or TAIL, index of its key), type). The value runs from the key to the comma
# before the next key (for `tie`, the last one, to the `}}` that end the line).
FIELDS = {
    "agreement": (("head", 0), pa.float64()),
    "annotator_ids": (("head", 2), pa.list_(pa.int64())),
    "key_0": (("head", _C0 + 3), pa.string()),
    "model_0": (("head", _C0 + 4), pa.string()),
    "uid_0": (("head", _C0 + 10), pa.string()),
    "key_1": (("head", _C1 + 3), pa.string()),
    "model_1": (("head", _C1 + 4), pa.string()),
    "uid_1": (("head", _C1 + 10), pa.string()),
    "confidence": (("head", 28), pa.float64()),
    "intended_winner": (("head", 30), pa.string()),
    "judged_at": (("head", 31), pa.string()),
    "kind": (("head", 32), pa.string()),
    "label": (("head", 33), pa.string()),
    "num_example_per_prompt": (("head", 34), pa.int64()),
    "num_perturbations": (("head", 35), pa.int64()),
    "num_votes": (("head", 36), pa.int64()),
    "pair_id": (("head", 37), pa.int64()),
    "perturbation_type": (("head", 38), pa.string()),
    "group_key": (("head", 40), pa.string()),
    "prompt_id": (("head", 41), pa.int64()),
    "relations": (("head", 46), pa.list_(pa.string())),
    "caption": (("tail", 0), pa.string()),
    "split": (("tail", 4), pa.string()),
    **{f"votes_{name}": (("tail", 6 + TAIL[6:].index(name)), pa.int64()) for name in VOTES},
}
NULLABLE = ("intended_winner",)  # may be JSON null; every other string field is a string

# Before and after a chunk's lines, so every 8-byte word read stays inside the buffer.
_PAD = " " * 32


def _name(ref: tuple[str, int]) -> str:
    return (HEAD if ref[0] == "head" else TAIL)[ref[1]]


def _next(ref: tuple[str, int]) -> tuple[str, int] | None:
    part, index = ref
    return (part, index + 1) if index + 1 < len(HEAD if part == "head" else TAIL) else None


def _word(expected: bytes) -> tuple[int, int]:
    """(value, mask) comparing the last len(expected) <= 8 bytes of a little-endian word."""
    shift = 8 * (8 - len(expected))
    return int.from_bytes(expected, "little") << shift, ((1 << (8 * len(expected))) - 1) << shift


# The keys whose positions are used (the fields' keys and the keys after them), in line order,
# and for each the 8 bytes that end at its closing quote: `,"name"` or `{"name"` for a name of
# up to five characters, else the name's end.
_KEYS = sorted(
    {ref for ref, _ in FIELDS.values()}
    | {following for ref, _ in FIELDS.values() if (following := _next(ref))},
    key=lambda ref: (ref[0] == "tail", ref[1]),
)
_KEY_COLUMN = {ref: column for column, ref in enumerate(_KEYS)}
_KEY_WORDS = [
    _word(((b"{" if ref in _FIRST_IN_OBJECT else b",") + f'"{_name(ref)}"'.encode())[-8:])
    for ref in _KEYS
]
_KEY_VALUES = np.array([value for value, _ in _KEY_WORDS], np.uint64)
_KEY_MASKS = np.array([mask for _, mask in _KEY_WORDS], np.uint64)
_KEY_HEAD = np.array([ref[0] == "head" for ref in _KEYS])
_KEY_INDEX = np.array([ref[1] for ref in _KEYS], np.int32)

# Fields in line order (their spans then come in ascending order within a line).
_ORDER = sorted(FIELDS, key=lambda field: _KEY_COLUMN[FIELDS[field][0]])
_FIELD_COLUMN = {field: column for column, field in enumerate(_ORDER)}
_VALUE_KEY = np.array([_KEY_COLUMN[FIELDS[field][0]] for field in _ORDER])
_LAST = [field for field in _ORDER if _next(FIELDS[field][0]) is None]  # ends at `}}`
_NEXT_KEY = np.array([_KEY_COLUMN.get(_next(FIELDS[f][0]), 0) for f in _ORDER])
_NEXT_LENGTH = np.array(
    [len(_name(_next(FIELDS[f][0]))) if f not in _LAST else 0 for f in _ORDER], np.int32
)
_STRINGS = [f for f in _ORDER if FIELDS[f][1] == pa.string()]
_INTEGERS = [f for f in _ORDER if FIELDS[f][1] == pa.int64()]
_FLOATS = [f for f in _ORDER if FIELDS[f][1] == pa.float64()]
_LISTS = [f for f in _ORDER if pa.types.is_list(FIELDS[f][1])]
_STRING_COLUMNS = np.array([_FIELD_COLUMN[f] for f in _STRINGS if f not in NULLABLE])
_QUOTED_COLUMNS = np.array([_FIELD_COLUMN[f] for f in _STRINGS])
_LAST_COLUMNS = np.array([_FIELD_COLUMN[f] for f in _LAST])
_TAKE_ORDER = [*_STRINGS, *_INTEGERS, *_FLOATS, *_LISTS]  # one cast per number type
_TAKE_COLUMNS = np.array([_FIELD_COLUMN[f] for f in _TAKE_ORDER])
_NULL = int.from_bytes(b"null", "little")


class Scan:
    """Where each field's value lies in every line of a chunk, and which lines passed."""

    def __init__(self, lines: list[str]) -> None:
        count = len(lines)
        text = "\n".join([_PAD, *lines, _PAD])
        ascii = text.isascii()
        self.data = data = text.encode()
        del text
        self.good = np.zeros(count, bool)
        self.begin = self.end = np.zeros((count, len(_ORDER)), np.int32)
        self.nulls = {field: np.zeros(count, bool) for field in NULLABLE}
        if count == 0 or len(data) >= 2**31:
            return  # positions are int32: a chunk of 2 GiB goes to the JSON reader
        raw = np.frombuffer(data, np.uint8)
        if ascii:  # one byte per character
            lengths = np.fromiter(map(len, lines), np.int32, count)
            ends = len(_PAD) + np.cumsum(lengths + 1, dtype=np.int32)  # each line's newline
        else:
            ends = np.flatnonzero(raw == 0x0A)[1:].astype(np.int32)
            if len(ends) != count:
                return  # a line with a newline of its own: not a canonical line
        starts = np.empty(count, np.int32)
        starts[0] = len(_PAD) + 1
        starts[1:] = ends[:-1] + 1
        # The 8-byte little-endian word at every byte offset (a view, no copy).
        words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
        keys = _key_ends(raw)
        if len(keys) == 0:
            return
        first = np.searchsorted(keys, starts).astype(np.int32)
        after = np.searchsorted(keys, ends).astype(np.int32)
        good = after - first >= len(HEAD) + len(TAIL)
        # rows x used keys: each key's index among all keys, then its position. Rows that
        # failed read some other key (and stay failed).
        index = np.where(_KEY_HEAD, first[:, None], (after - len(TAIL))[:, None]) + _KEY_INDEX
        np.clip(index, 0, len(keys) - 1, out=index)
        position = keys[index]
        del index
        good &= ((words[position - 7] & _KEY_MASKS) == _KEY_VALUES).all(axis=1)
        good &= position[:, 0] == starts + len('{"agreement"') - 1
        good &= (words[ends - 8] >> np.uint64(48)) == int.from_bytes(b"}}", "little")
        if data.find(b"\\") >= 0:
            good[np.searchsorted(ends, np.flatnonzero(raw == 0x5C))] = False
        # rows x fields: each value's span, from after `":` to the comma before the next key.
        begin = position[:, _VALUE_KEY] + 2
        end = position[:, _NEXT_KEY] - _NEXT_LENGTH - 2
        del position
        end[:, _LAST_COLUMNS] = (ends - 2)[:, None]
        good &= (end > begin).all(axis=1)
        closing = raw[end - 1]
        good &= (closing[:, _STRING_COLUMNS] == 0x22).all(axis=1)
        for field in NULLABLE:
            column = _FIELD_COLUMN[field]
            null = end[:, column] - begin[:, column] == 4
            null &= words[end[:, column] - 8] >> np.uint64(32) == _NULL
            good &= (closing[:, column] == 0x22) | null
            self.nulls[field] = null
        begin[:, _QUOTED_COLUMNS] += 1  # strings without their quotes
        end[:, _QUOTED_COLUMNS] -= 1
        for field in _LISTS:  # drop the brackets, and a list of strings its outer quotes
            column = _FIELD_COLUMN[field]
            good &= closing[:, column] == 0x5D
            begin[:, column] += 1
            end[:, column] -= 1
            if FIELDS[field][1].value_type == pa.string():
                inner = end[:, column] - begin[:, column]
                quoted = (inner >= 2) & (raw[end[:, column] - 1] == 0x22)
                good &= quoted | (inner == 0)
                begin[:, column] += quoted
                end[:, column] -= quoted
        good &= (end >= begin).all(axis=1)
        self.good = good
        self.begin, self.end = begin, end

    def fields(self, rows: np.ndarray) -> dict[str, pa.Array]:
        """The fields of the given good lines, in the order given, as arrays.

        Raises `pa.ArrowInvalid` when a value does not convert (the caller parses those
        lines instead).
        """
        count = len(rows)
        width = len(_ORDER)
        if count == 0:
            return {field: pa.nulls(0, kind) for field, (_, kind) in FIELDS.items()}
        # Every span and the gap after it, in line order, as one string array over the chunk's
        # bytes (no copy); `take` copies the spans out field by field, rows in the order given.
        ordered = np.sort(rows)
        offsets = np.empty((count, width, 2), np.int32)
        offsets[:, :, 0] = self.begin[ordered]
        offsets[:, :, 1] = self.end[ordered]
        spans = pa.Array.from_buffers(
            pa.string(), offsets.size - 1, [None, pa.py_buffer(offsets), pa.py_buffer(self.data)]
        )
        place = np.searchsorted(ordered, rows)
        picks = (2 * (place[None, :] * width + _TAKE_COLUMNS[:, None])).reshape(-1)
        values = spans.take(int64_array(picks))
        out: dict[str, pa.Array] = {}
        at = 0
        for group, kind in ((_STRINGS, None), (_INTEGERS, pa.int64()), (_FLOATS, pa.float64())):
            block = values.slice(at * count, len(group) * count)
            if kind is not None:
                block = pc.cast(block, kind)
            for offset, field in enumerate(group):
                out[field] = block.slice(offset * count, count)
            at += len(group)
        for field in _LISTS:
            out[field] = _list(values.slice(at * count, count), FIELDS[field][1])
            at += 1
        for field, null in self.nulls.items():
            absent = bool_array(null[rows])
            out[field] = pc.if_else(absent, literal(None, pa.string()), out[field])
        return out

    def split_rows(self, name: str) -> np.ndarray:
        """The good lines whose `split` is `name` (up to 6 characters), ascending."""
        column = _FIELD_COLUMN["split"]
        begin, end = self.begin[:, column], self.end[:, column]
        value, mask = _word(f'"{name}"'.encode())
        words = np.ndarray((len(self.data) - 7,), dtype="<u8", buffer=self.data, strides=(1,))
        match = (end - begin == len(name)) & ((words[end - 7] & mask) == value)
        return np.flatnonzero(self.good & match)


def _key_ends(raw: np.ndarray, block: int = 1 << 18) -> np.ndarray:
    """Offsets of the `"` of every `":` in `raw`, found a cache-sized block at a time."""
    found = []
    size = len(raw) - 1
    colon = np.empty(min(block, size), bool)
    quote = np.empty(min(block, size), bool)
    for at in range(0, size, block):
        count = min(block, size - at)
        np.equal(raw[at + 1 : at + 1 + count], 0x3A, out=colon[:count])
        np.equal(raw[at : at + count], 0x22, out=quote[:count])
        np.logical_and(colon[:count], quote[:count], out=colon[:count])
        found.append((np.flatnonzero(colon[:count]) + at).astype(np.int32))
    return np.concatenate(found) if found else np.zeros(0, np.int32)


def _list(strings: pa.Array, kind: pa.DataType) -> pa.Array:
    """`1,2` (numbers) or `a","b` (strings without their outer quotes) as lists; "" is []."""
    of_strings = kind.value_type == pa.string()
    parts = pc.split_pattern(strings, '","' if of_strings else ",")
    if of_strings and pc.any(pc.match_substring(pc.list_flatten(parts), '"')).as_py():
        raise pa.ArrowInvalid("a list holds something other than strings")
    empty = pc.equal(pc.binary_length(strings), literal(0, pa.int64()))
    if pc.any(empty).as_py():
        parts = pc.if_else(empty, literal([], parts.type), parts)
    return parts.cast(kind)

"""The object lists and attribute words of the built-in vocabularies.

COCO's 80 categories as GenEval spells them (``tv``, ``computer mouse``, ``tv remote``,
``computer keyboard``, ...), grouped by COCO super-category; the 50 T2I-CompBench spatial
objects; GenEval's ten colours and two sizes.
"""

from __future__ import annotations

DEFAULT_COLORS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
)
DEFAULT_SIZES: tuple[str, ...] = ("small", "large")

# Nouns only used in the plural take "a pair of" in the singular ("a pair of scissors").
PAIR_NOUNS: frozenset[str] = frozenset(
    {"skis", "scissors", "glasses", "pants", "jeans", "shorts", "trousers", "binoculars"}
)

COCO_BY_CATEGORY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("person", ("person",)),
    ("vehicle", ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat")),
    ("outdoor", ("traffic light", "fire hydrant", "stop sign", "parking meter", "bench")),
    (
        "animal",
        ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
    ),
    ("accessory", ("backpack", "umbrella", "handbag", "tie", "suitcase")),
    (
        "sports",
        (
            "frisbee",
            "skis",
            "snowboard",
            "sports ball",
            "kite",
            "baseball bat",
            "baseball glove",
            "skateboard",
            "surfboard",
            "tennis racket",
        ),
    ),
    ("kitchen", ("bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl")),
    (
        "food",
        (
            "banana",
            "apple",
            "sandwich",
            "orange",
            "broccoli",
            "carrot",
            "hot dog",
            "pizza",
            "donut",
            "cake",
        ),
    ),
    ("furniture", ("chair", "couch", "potted plant", "bed", "dining table", "toilet")),
    (
        "electronic",
        ("tv", "laptop", "computer mouse", "tv remote", "computer keyboard", "cell phone"),
    ),
    ("appliance", ("microwave", "oven", "toaster", "sink", "refrigerator")),
    ("indoor", ("book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")),
)

COMPBENCH_OBJECTS: tuple[str, ...] = (
    "airplane",
    "backpack",
    "bag",
    "balloon",
    "bee",
    "bicycle",
    "bird",
    "book",
    "bowl",
    "boy",
    "butterfly",
    "candle",
    "car",
    "cat",
    "chair",
    "chicken",
    "clock",
    "computer",
    "couch",
    "cow",
    "cup",
    "desk",
    "dog",
    "fish",
    "frog",
    "giraffe",
    "girl",
    "horse",
    "key",
    "lamp",
    "man",
    "microwave",
    "mouse",
    "painting",
    "person",
    "phone",
    "pig",
    "plate",
    "rabbit",
    "refrigerator",
    "sheep",
    "sofa",
    "suitcase",
    "table",
    "television",
    "train",
    "turtle",
    "vase",
    "wallet",
    "woman",
)

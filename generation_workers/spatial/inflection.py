"""English articles, plurals and number words for object names.

Rules first, then exceptions: "an" before a vowel sound ("an apple", "an umbrella", "an hour")
and "a" before a consonant sound ("a unicorn", "a one-way sign", "a european car"). Plurals
inflect the last word of a multi-word name ("computer mouse" -> "computer mice",
"wine glass" -> "wine glasses"); invariant nouns ("sheep", "skis", "scissors") stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Vowel letter, consonant sound: "a unicorn", "a user", "a european", "a one".
_CONSONANT_SOUND_PREFIXES: tuple[str, ...] = (
    "uni",
    "use",
    "usu",
    "uten",
    "uter",
    "ukulele",
    "uran",
    "euro",
    "eu",
    "ewe",
    "one",
    "once",
)
# Consonant letter, vowel sound: "an hour", "an honest".
_VOWEL_SOUND_PREFIXES: tuple[str, ...] = ("hour", "honest", "honor", "honour", "heir")
# Initialisms read letter by letter: "an mp3 player", "an x-ray"; "a tv" stays regular.
_VOWEL_SOUND_WORDS: frozenset[str] = frozenset({"x-ray", "mp3", "fbi", "sd", "mri", "led"})

_IRREGULAR_PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "person": "people",
        "man": "men",
        "woman": "women",
        "child": "children",
        "mouse": "mice",
        "goose": "geese",
        "foot": "feet",
        "tooth": "teeth",
        "ox": "oxen",
        "knife": "knives",
        "wife": "wives",
        "life": "lives",
        "leaf": "leaves",
        "loaf": "loaves",
        "shelf": "shelves",
        "wolf": "wolves",
        "calf": "calves",
        "half": "halves",
        "scarf": "scarves",
        "thief": "thieves",
        "elf": "elves",
        "cactus": "cacti",
        "potato": "potatoes",
        "tomato": "tomatoes",
        "mango": "mangoes",
        "hero": "heroes",
        "echo": "echoes",
        "volcano": "volcanoes",
    }
)
_INVARIANT_PLURALS: frozenset[str] = frozenset(
    {
        "sheep",
        "fish",
        "deer",
        "moose",
        "bison",
        "salmon",
        "trout",
        "aircraft",
        "series",
        "species",
        "scissors",
        "skis",
        "glasses",
        "pants",
        "jeans",
        "shorts",
        "trousers",
        "binoculars",
        "broccoli",
        "cattle",
    }
)

NUMBER_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
)
MAX_COUNT = len(NUMBER_WORDS) - 1
_NUMBER_VALUES: Mapping[str, int] = MappingProxyType(
    {word: value for value, word in enumerate(NUMBER_WORDS)}
)


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" for the phrase that follows the article ("apple" -> "an")."""
    word = phrase.strip().split(" ", 1)[0].lower() if phrase.strip() else ""
    if not word:
        return "a"
    if word in _VOWEL_SOUND_WORDS or word.startswith(_VOWEL_SOUND_PREFIXES):
        return "an"
    if word.startswith(_CONSONANT_SOUND_PREFIXES):
        return "a"
    return "an" if word[0] in "aeiou" else "a"


def _plural_word(word: str) -> str:
    if word in _INVARIANT_PLURALS:
        return word
    irregular = _IRREGULAR_PLURALS.get(word)
    if irregular is not None:
        return irregular
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def pluralize(noun: str) -> str:
    """The plural of a (possibly multi-word) noun: its last word is inflected."""
    head, _, last = noun.rpartition(" ")
    plural = _plural_word(last)
    return f"{head} {plural}" if head else plural


def number_word(count: int) -> str:
    """ "one".."twenty" for 1..20; ``ValueError`` outside that range."""
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be between 1 and {MAX_COUNT}, not {count}")
    return NUMBER_WORDS[count]


def parse_number(word: str) -> int | None:
    """The count a number word or digit string stands for (1..20), else None."""
    value = _NUMBER_VALUES.get(word.lower())
    if value is None and word.isascii() and word.isdigit():  # int() refuses "²"
        value = int(word)
    if value is None or not 1 <= value <= MAX_COUNT:
        return None
    return value

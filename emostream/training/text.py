"""Phonetically varied sentences for the TTS engines (seeded): statements, questions,
exclamations, lists, numbers, short and long utterances with pauses, dictionary words for
coverage and nonsense syllable strings that exercise every viseme."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_NOUNS = _words(
    "apple boat cheese dog engine father garden house island jacket kitten ladder mother number "
    "orange pencil queen river shadow table umbrella village window yellow zebra bridge church "
    "judge thumb feather voice mouth vision treasure measure beach sheep ship phone photo music "
    "morning evening weather valley mountain ocean butterfly rhythm thought breakfast puzzle "
    "wizard pocket bubble marble pepper velvet cabbage lobster whisper computer camera picture "
    "teacher doctor sister brother neighbour journey question answer"
)
_VERBS = _words(
    "bring build catch drive find follow give hear jump keep laugh move open paint pull push read "
    "reach shape share show sing smile speak teach think throw touch visit wash watch whisper "
    "wonder carry borrow choose measure bounce breathe chew fetch juggle stumble"
)
_ADJS = _words(
    "blue bright calm cheap dark deep early fresh gentle huge lazy loud narrow new odd pale proud "
    "quick quiet rough sharp shiny smooth soft strange thick thin warm wet wide young awful "
    "yellow purple cheerful gloomy fragile vivid bumpy fuzzy"
)
_PEOPLE = (
    "Maria",
    "John",
    "the old man",
    "my neighbour",
    "the children",
    "Peter and Sue",
    "our teacher",
    "the doctor",
    "Grandma",
    "everybody",
)
_PLACES = ("by the river", "in the kitchen", "at the station", "near the bridge", "on Monday",
           "before lunch", "under the table", "in the morning", "after the show", "at home")  # fmt: skip
_STARTS = ("Well,", "Oh,", "So,", "Honestly,", "Look,", "Listen,", "Actually,", "You know,", "Hmm,")
_SYLLABLES = _words(
    "pa ba ma fa va tha da ta ka ga na la ra sa za sha cha ja wa ya pee bee mee fee vee thee dee "
    "tee kee gee nee lee ree see zee shee chee jee wee poo boo moo foo voo doo too koo goo noo "
    "loo roo soo zoo shoo choo joo woo po bo mo fo vo do to ko go no lo ro so zo sho cho jo pay "
    "bay may fay day tay kay gay nay lay ray say jay pie by my fie die tie kai guy nigh lie rye "
    "sigh ow oy air ear oar ooh ah eh ee uh"
)


@lru_cache(maxsize=1)
def dictionary_words() -> tuple[str, ...]:
    """Plain alphabetic words of 3–9 letters from the pocketsphinx CMU dictionary (empty if
    pocketsphinx is missing)."""
    # deferred: pocketsphinx (heavy), only for its pronunciation dictionary
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        return ()
    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            if w.isalpha() and w.islower() and 3 <= len(w) <= 9:
                words.add(w)
    return tuple(sorted(words))


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(4))
    if kind == 0:
        return str(int(rng.integers(2, 100)))
    if kind == 1:
        return str(int(rng.integers(1900, 2030)))
    if kind == 2:
        return f"{int(rng.integers(1, 13))}:{int(rng.integers(0, 6))}{int(rng.integers(10))}"
    return " ".join(str(int(rng.integers(10))) for _ in range(int(rng.integers(3, 7))))


def _clause(rng: np.random.Generator) -> str:
    subject = _pick(rng, _PEOPLE)
    verb = _pick(rng, _VERBS)
    obj = f"the {_pick(rng, _ADJS)} {_pick(rng, _NOUNS)}"
    tail = f" {_pick(rng, _PLACES)}" if rng.random() < 0.6 else ""
    verb = verb if subject in ("the children", "Peter and Sue") else verb + "s"
    return f"{subject} {verb.replace('chs', 'ches').replace('shs', 'shes')} {obj}{tail}"


def sentence(rng: np.random.Generator) -> str:
    """One utterance; the mix covers questions, exclamations, lists, numbers, pauses, short
    words, dictionary words and nonsense syllables."""
    kind = rng.choice(
        ["statement", "question", "exclaim", "list", "number", "long", "short", "dictionary",
         "nonsense"],
        p=[0.2, 0.12, 0.1, 0.1, 0.1, 0.14, 0.08, 0.08, 0.08],
    )  # fmt: skip
    if kind == "statement":
        s = _clause(rng) + "."
        return f"{_pick(rng, _STARTS)} {s[0].lower()}{s[1:]}" if rng.random() < 0.3 else s
    if kind == "question":
        q = _pick(rng, ("Did", "Will", "Why did", "Where did", "How could", "Would"))
        return f"{q} {_pick(rng, _PEOPLE)} {_pick(rng, _VERBS)} the {_pick(rng, _NOUNS)}?"
    if kind == "exclaim":
        return _pick(rng, ("What a", "Such a", "Oh no, the", "Wow, the", "Look at the")) + (
            f" {_pick(rng, _ADJS)} {_pick(rng, _NOUNS)}!"
        )
    if kind == "list":
        items = [f"{_pick(rng, _ADJS)} {_pick(rng, _NOUNS)}s" for _ in range(int(rng.integers(3, 6)))]
        return f"We need {', '.join(items[:-1])}, and {items[-1]}."
    if kind == "number":
        return _pick(rng, ("Call me at", "The code is", "It happened in", "Meet me at",
                           "Room number")) + f" {_number(rng)}."  # fmt: skip
    if kind == "long":
        parts = [_clause(rng) for _ in range(int(rng.integers(2, 4)))]
        joiners = [", and then ", "... ", "; but ", ", because ", " — "]
        out = parts[0]
        for p in parts[1:]:
            out += _pick(rng, joiners) + p
        return out[0].upper() + out[1:] + "."
    if kind == "short":
        return _pick(rng, ("Yes.", "No way!", "Okay.", "Really?", "Thank you.", "Hello there.",
                           "Maybe.", "Good morning!", "Why?", "Hmm, I see.", "Oh my!"))  # fmt: skip
    if kind == "dictionary":
        words = dictionary_words() or tuple(_NOUNS)
        ws = [_pick(rng, words) for _ in range(int(rng.integers(3, 9)))]
        return " ".join(ws).capitalize() + _pick(rng, (".", "?", "!", "..."))
    syl = [_pick(rng, _SYLLABLES) for _ in range(int(rng.integers(4, 11)))]
    return " ".join(syl).capitalize() + "."


def sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [sentence(rng) for _ in range(n)]

"""One phone inventory for every engine, and the map from phones to the 15 visemes.

The inventory is ARPAbet (CMUdict's 39 phones) in lower case plus ``sil`` for pauses. Each
engine's own phone names (espeak-ng IPA, flite/festival's radio set, pocketsphinx's
upper-case ARPAbet, piper's IPA) are translated here, so targets and models see one alphabet.
"""

from __future__ import annotations

from emostream.training.schema import VISEMES, Phone

SIL = "sil"

#: Unified phone → viseme (Oculus viseme set, see ``schema.VISEMES``).
PHONE_TO_VISEME: dict[str, str] = {
    SIL: "sil",
    # bilabials, labiodentals, dentals
    "p": "PP", "b": "PP", "m": "PP",
    "f": "FF", "v": "FF",
    "th": "TH", "dh": "TH",
    # alveolar stops, velars, post-alveolars, sibilants, nasals/laterals, r
    "t": "DD", "d": "DD",
    "k": "kk", "g": "kk", "ng": "kk", "hh": "kk",
    "ch": "CH", "jh": "CH", "sh": "CH", "zh": "CH",
    "s": "SS", "z": "SS",
    "n": "nn", "l": "nn",
    "r": "RR", "er": "RR",
    # vowels and glides
    "aa": "aa", "ae": "aa", "ah": "aa", "ay": "aa", "aw": "aa",
    "eh": "E", "ey": "E",
    "ih": "I", "iy": "I", "y": "I",
    "ao": "O", "ow": "O", "oy": "O",
    "uh": "U", "uw": "U", "w": "U",
}  # fmt: skip
PHONES: tuple[str, ...] = tuple(sorted(PHONE_TO_VISEME))
assert set(PHONE_TO_VISEME.values()) <= set(VISEMES)

#: espeak-ng IPA (stress and length marks stripped) → unified phone. Longest match wins.
IPA_TO_PHONE: dict[str, str] = {
    "tʃ": "ch", "dʒ": "jh", "aɪ": "ay", "aʊ": "aw", "eɪ": "ey", "oʊ": "ow", "əʊ": "ow",
    "ɔɪ": "oy", "ɪə": "ih", "eə": "eh", "ʊə": "uh", "iə": "iy", "aɪə": "ay", "aʊə": "aw",
    "ɑ": "aa", "ɒ": "aa", "æ": "ae", "a": "ae", "ʌ": "ah", "ə": "ah", "ɐ": "ah", "ᵻ": "ih",
    "ɔ": "ao", "o": "ow", "ɛ": "eh", "e": "eh", "ɜ": "er", "ɚ": "er", "ɝ": "er", "ɪ": "ih",
    "i": "iy", "ʊ": "uh", "u": "uw", "ɯ": "uw", "y": "iy",
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "θ": "th", "ð": "dh",
    "t": "t", "d": "d", "ɾ": "d", "ʔ": "t", "k": "k", "g": "g", "ɡ": "g", "ŋ": "ng",
    "h": "hh", "x": "hh", "ʃ": "sh", "ʒ": "zh", "s": "s", "z": "z", "n": "n", "l": "l",
    "ɫ": "l", "ɹ": "r", "r": "r", "ɻ": "r", "w": "w", "j": "y", "ç": "hh", "ʍ": "w",
}  # fmt: skip
_IPA_MARKS = "ˈˌːˑ̩̃.‿-_|#'\u0361\u035c"

#: flite / festival (radio phone set) and CMU names that differ from the unified set.
_ALIASES: dict[str, str] = {
    "pau": SIL, "h#": SIL, "brth": SIL, "sp": SIL, "sil": SIL, "ax": "ah", "axr": "er",
    "ix": "ih", "dx": "d", "el": "l", "em": "m", "en": "n", "nx": "n", "hv": "hh",
}  # fmt: skip


def ipa_to_phones(ipa: str) -> list[str]:
    """Translate one espeak-ng/piper IPA phoneme string (maybe a diphthong) to unified phones.

    An empty string (espeak's pause event) is silence; unknown symbols are skipped.
    """
    s = "".join(c for c in ipa if c not in _IPA_MARKS)
    if not s:
        return [SIL]
    out: list[str] = []
    i = 0
    while i < len(s):
        for n in (3, 2, 1):
            chunk = s[i : i + n]
            if len(chunk) == n and chunk in IPA_TO_PHONE:
                out.append(IPA_TO_PHONE[chunk])
                i += n
                break
        else:
            i += 1
    return out


def arpabet_to_phone(name: str) -> str | None:
    """flite/festival/pocketsphinx phone name → unified phone, or None if not speech or silence
    (pocketsphinx fillers like ``+NSN+`` are treated as silence)."""
    n = name.strip().lower().rstrip("012")
    if n.startswith("+") or n.startswith("<") or n.startswith("["):
        return SIL
    n = _ALIASES.get(n, n)
    return n if n in PHONE_TO_VISEME else None


def make_phone(start: int, end: int, phone: str) -> Phone:
    return Phone(start=start, end=end, phone=phone, viseme=PHONE_TO_VISEME[phone])


def merge_silences(phones: list[Phone]) -> list[Phone]:
    """Drop empty segments and merge neighbouring silences."""
    out: list[Phone] = []
    for p in phones:
        if p.end <= p.start:
            continue
        if out and p.phone == SIL and out[-1].phone == SIL:
            out[-1] = make_phone(out[-1].start, p.end, SIL)
        else:
            out.append(p)
    return out


def split_segment(start: int, end: int, phones: list[str]) -> list[Phone]:
    """Share ``[start, end)`` between ``phones`` (a diphthong split in IPA, say) in equal parts."""
    n = max(1, len(phones))
    cuts = [start + (end - start) * k // n for k in range(n + 1)]
    return [make_phone(cuts[k], cuts[k + 1], ph) for k, ph in enumerate(phones)]


def finalize(phones: list[Phone], n_samples: int) -> list[Phone]:
    """Clip to the audio, fill gaps with silence so phones tile ``[0, n_samples)`` exactly."""
    out: list[Phone] = []
    cursor = 0
    for p in sorted(phones, key=lambda q: q.start):
        s, e = max(p.start, cursor), min(p.end, n_samples)
        if e <= s:
            continue
        if s > cursor:
            out.append(make_phone(cursor, s, SIL))
        out.append(make_phone(s, e, p.phone))
        cursor = e
    if cursor < n_samples:
        out.append(make_phone(cursor, n_samples, SIL))
    return merge_silences(out)


def rescale_sample(index: int, rate_in: int, rate_out: int) -> int:
    """Map a sample index between rates exactly (integer arithmetic, round half up)."""
    return (2 * index * rate_out + rate_in) // (2 * rate_in)

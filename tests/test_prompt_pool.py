"""The writer's prompt pool (data/prompt_pool.jsonl): its size and shape, its disjointness from the held-out
transfer set (topics) and from every other prompt set (text), no reasoning pattern in it, a generator that
writes it byte for byte, and its reader."""

from __future__ import annotations

import json
import re
import runpy
from collections import Counter

import pytest

from corpusforge.errors import GenerateError
from corpusforge.prompts import PROMPT_POOL, read_pool
from corpusforge.templates.detect import Detector
from corpusforge.templates.registry import load_registry

from .conftest import ROOT, SAMPLE

DATA = ROOT / "corpusforge" / "data"
GENERATOR = ROOT / "scripts" / "make_prompt_pool.py"

#: The transfer set's 25 topics (read from data/transfer.jsonl, which has no topic field) and, for each, the
#: words that would bring the topic or its core back: English and Russian, each matched at the start of a word
#: (so "garden" also finds "gardening", "сад\b" only сад itself). Wider than the topics' own words on purpose.
TRANSFER_TOPICS = {
    "the sea at night": [r"sea\b", r"seas\b", "seaside", "seashore", "ocean", "beach", r"waves?\b",
                         r"мор(е|я|ю|ем|ях)\b", "морск", "океан", "пляж", "волн"],
    "a city in winter": ["city", "cities", "town", "winter", "snow", "город", "зим", "снег", "снеж"],
    "learning a new language": ["language", "vocabulary", "grammar", "язык", "грамматик"],
    "an old bridge": ["bridge", "мост"],
    "the first day of school": ["school", "classroom", "teacher", "pupil", "школ", "учител", "первоклас"],
    "a kitchen in the morning": ["kitchen", "morning", "breakfast", "кухн", r"утр(о|а|ом)\b", "утрен", "завтрак"],
    "a long train journey": [r"trains?\b", "railway", "journey", "поезд", "электричк", "вагон", "железн",
                             "путешеств"],
    "friendship": ["friend", "друж", r"друг(а|у|ом|е)?\b", "друз"],
    "a forgotten letter": ["letter", "envelope", "postcard", "mail", "письм", "писем", "конверт", "открытк"],
    "rain on a roof": [r"rains?\b", "rainy", "raindrop", "roof", "umbrella", "дожд", "ливн", "ливен", "крыш",
                       "зонт"],
    "the last bus home": [r"bus\b", "buses", "commut", "автобус"],
    "a garden after a storm": ["garden", "storm", "thunder", "lightning", r"сад(а|у|е|ом)?\b", "садов", "гроз",
                               r"бур(я|и|ю|ей)\b", "молни"],
    "a market at noon": ["market", "bazaar", "noon", "midday", "рын", "базар", "полдень", "полдн", "полудн"],
    "moving to a new house": ["moving", r"move\b", "relocat", "house", "переезд", "переезж", "переех",
                              r"дом(а|е|у|ом)?\b"],
    "a quiet library": ["librar", "библиотек"],
    "a mountain village": ["mountain", "hill", "village", "peak", r"гор(а|ы|е|у|ах)\b", "горн", "деревн",
                           "деревен", r"сел(о|а|е|у|ом)\b", "сельск"],
    "an empty stadium": ["stadium", "arena", "стадион", "арен"],
    "the smell of fresh bread": ["bread", "baker", "loaf", "loaves", "smell", "хлеб", "булк", "булоч", "батон",
                                 "пекар", "выпечк", "запах"],
    "a broken clock": ["clock", "wristwatch", "watchmaker", r"час(ы|ах|ов|ам)\b", "часовщ", "будильник"],
    "a lighthouse keeper": ["lighthouse", "keeper", "маяк", "смотрител"],
    "chess": ["chess", "checkers", "draughts", "шахмат", "шашк"],
    "grandmother's recipes": ["grandm", "granny", "recipe", "cookbook", "бабушк", "бабул", "рецепт"],
    "a forest path": ["forest", r"woods\b", "path", "trail", r"лес(а|у|е|ом)?\b", "лесн", r"троп(а|ы|у|е|ой)\b",
                      "тропин"],
    "the night sky": [r"sky\b", "skies", r"stars?\b", "starry", "night", "moon", "telescope", r"неб(о|а|е|ом)\b",
                      "небес", "звёзд", "звезд", "ноч", r"лун(а|ы|е|у)\b", "телескоп"],
    "working in a garden": ["garden", "weeding", "огород", "грядк"],   # сад is under the storm's garden
}
KEYWORDS = [(topic, re.compile(r"(?<!\w)(?:" + kw + ")")) for topic, kws in TRANSFER_TOPICS.items() for kw in kws]

#: Words the brief keeps out of the pool (the if-then and paradox cues, whole words, and движение in any case).
FORBIDDEN = re.compile(r"(?<!\w)(if|then|therefore|and yet|если|то|поэтому|однако|движени\w*)(?!\w)")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def jsonl(path, field="prompt"):
    return [json.loads(line)[field] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def topics_in(text):
    return sorted({topic for topic, kw in KEYWORDS if kw.search(text.casefold())})


@pytest.fixture(scope="module")
def pool():
    return read_pool()


def test_the_pool_is_large_unique_and_has_every_topic_in_every_form_in_both_languages(pool):
    counts = Counter(r["language"] for r in pool)
    assert set(counts) == {"en", "ru"} and counts["en"] >= 1000 and counts["ru"] >= 1000, counts
    assert all(set(r) == {"prompt", "language", "topic", "form"} for r in pool)
    prompts = [r["prompt"] for r in pool]
    assert len(set(prompts)) == len(prompts), [p for p, n in Counter(prompts).items() if n > 1][:5]
    cells = Counter((r["language"], r["topic"], r["form"]) for r in pool)
    assert set(cells.values()) == {1}
    topics, forms = {r["topic"] for r in pool}, {r["form"] for r in pool}
    assert len(cells) == 2 * len(topics) * len(forms)


def test_english_prompts_have_no_cyrillic_and_russian_letters_are_all_cyrillic(pool):
    assert [r["prompt"] for r in pool if r["language"] == "en" and CYRILLIC.search(r["prompt"])] == []
    bad = [r["prompt"] for r in pool if r["language"] == "ru"
           and not all(CYRILLIC.match(c) for c in r["prompt"] if c.isalpha())]
    assert bad == []


def test_no_pool_prompt_contains_or_is_contained_in_any_other_prompt_set(pool):
    names = ("transfer", "controls", "controls_heldout", "neutral")
    others = [p for name in names for p in jsonl(DATA / f"{name}.jsonl")]
    others += [t for f in sorted((SAMPLE / "corpus" / "data").glob("*.jsonl")) for t in jsonl(f, "text")]
    assert len(others) > 500
    others = [o.casefold() for o in others]
    clashes = [p for p in (r["prompt"].casefold() for r in pool) if any(p in o or o in p for o in others)]
    assert clashes == []


def test_the_keywords_find_every_transfer_prompt_and_no_pool_prompt(pool):
    transfer = jsonl(DATA / "transfer.jsonl")
    assert len(transfer) == 200
    assert [t for t in transfer if not topics_in(t)] == []     # each of the 200 names one of the 25 topics
    assert set().union(*map(topics_in, transfer)) == set(TRANSFER_TOPICS)   # and no topic's list is dead
    assert [(r["prompt"], topics_in(r["prompt"])) for r in pool if topics_in(r["prompt"])] == []


def test_no_pool_prompt_realises_a_pattern_or_says_a_forbidden_cue(pool):
    detector = Detector(load_registry().list())
    assert [r["prompt"] for r in pool if detector.patterns_in(r["prompt"])] == []
    assert [r["prompt"] for r in pool if FORBIDDEN.search(r["prompt"].casefold())] == []


def test_the_generator_writes_the_committed_file_byte_for_byte(tmp_path):
    out = tmp_path / "pool.jsonl"
    count = runpy.run_path(str(GENERATOR))["write_pool"](out)
    assert out.read_bytes() == PROMPT_POOL.read_bytes()
    assert count == len(read_pool(out)) and b"\r" not in out.read_bytes()


def test_read_pool_returns_the_records_and_names_the_line_of_a_bad_one(tmp_path):
    good = {"prompt": "Describe a kettle.", "language": "en", "topic": "a kettle", "form": "description"}
    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good | {"form": "chat"}) + "\n", encoding="utf-8")
    assert read_pool(path) == [good, good | {"form": "chat"}]
    own = {"prompt": "Describe a kettle.", "language": "en"}          # a pool of one's own: prompt and language
    path.write_text(json.dumps(own) + "\n", encoding="utf-8")
    assert read_pool(path) == [own]
    for bad in ("{not json", json.dumps(good | {"topic": ""}), json.dumps({"prompt": "Hi"}), json.dumps(["a"]),
                json.dumps({"prompt": "Hi", "language": ""})):
        path.write_text(json.dumps(good) + "\n" + bad + "\n", encoding="utf-8")
        with pytest.raises(GenerateError) as caught:
            read_pool(path)
        assert (caught.value.file, caught.value.line) == (str(path), 2)
        assert f"{path}:2:" in str(caught.value)
    with pytest.raises(GenerateError, match="was not found"):
        read_pool(tmp_path / "missing.jsonl")

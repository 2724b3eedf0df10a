"""The benchmark's inputs: one short chat, one long chat, and short items for the batch runs."""

from __future__ import annotations

SHORT = {
    "messages": [
        {"role": "system", "content": "Answer in one clear sentence."},
        {"role": "user", "content": "Why does the sky look blue on a clear afternoon?"},
    ],
    "target": (
        "The sky looks blue because the molecules of the air scatter the short blue "
        "wavelengths of sunlight much more strongly than the longer red ones, so blue light "
        "reaches our eyes from every part of the sky."
    ),
    "granularity": "word",
}

CONTEXT = """\
The lighthouse on Kestrel Point was built in 1867, after three ships were lost on the reef in \
a single winter. The first tower was made of timber and stood only twelve metres tall, so its \
oil lamp could be seen from about ten nautical miles on a clear night. Storms damaged it \
almost every year, and the keepers spent most summers repairing the gallery and the stairs. \
In 1889 the harbour board replaced it with a stone tower of thirty metres, designed by the \
engineer Margaret Ellison, who had studied the coastal lights of Scotland and Norway. Her \
design used granite blocks cut on the island itself, which were dovetailed so that each course \
locked into the next. The new tower carried a first-order Fresnel lens, shipped from Paris in \
forty wooden crates. The lens turned on a bath of mercury and was driven by a clockwork weight \
that the keeper had to wind every four hours. Its beam flashed white twice every fifteen \
seconds, a pattern that sailors learned to recognise from far out at sea. Three families lived \
at the station. They kept goats and a vegetable garden, and a supply boat came once a \
fortnight when the weather allowed it. During the great storm of 1903 the boat could not land \
for seven weeks, and the keepers survived on salted fish and the potatoes from their garden. \
The light was converted from oil to acetylene gas in 1921, which made the flame brighter and \
cut the work of the keepers by half. Electricity arrived only in 1958, when a cable was laid \
across the sound from the mainland. The last keeper, Tomas Reyes, left the island in 1986, \
when the light was automated and the station was closed. For some years the buildings stood \
empty and began to decay. In 1994 a group of volunteers formed a trust to save them. They \
restored the keepers' cottages, rebuilt the garden walls, and opened a small museum about \
the history of the light and the ships that were wrecked on the reef. Today the lighthouse \
still works. Its modern lamp is powered by solar panels and batteries, and the old Fresnel \
lens is displayed in the museum, where visitors can see the brass frame and the prisms that \
once sent the beam across the water. The trust also counts the seabirds that nest on the \
cliffs each spring, and its records show that the puffin colony has grown every year since \
the station was closed."""

LONG = {
    "messages": [
        {"role": "system", "content": "Use the context to answer the question."},
        {
            "role": "user",
            "content": f"{CONTEXT}\n\nQuestion: Who designed the stone tower, and when was it built?",
        },
    ],
    "target": "The stone tower was designed by the engineer Margaret Ellison and was built in 1889.",
    "granularity": "sentence",
}

INPUTS = {"short": SHORT, "long": LONG}

_COUNTRIES = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Canada", "Ottawa"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
]
_SYSTEMS = [
    "Answer in one short sentence.",
    "Be brief and precise.",
    "Give a direct answer.",
    "Reply with a single sentence.",
]
_QUESTIONS = [
    ("What is the capital of {c}?", "The capital of {c} is {k}."),
    ("Which city is the capital of {c}?", "{k} is the capital city of {c}."),
]


def batch_items(n: int) -> list[dict]:
    """``n`` short chats (system + user, ~12 words) with ~10-token targets, all different."""
    items = []
    for i in range(n):
        country, capital = _COUNTRIES[i % len(_COUNTRIES)]
        question, answer = _QUESTIONS[(i // len(_COUNTRIES)) % len(_QUESTIONS)]
        system = _SYSTEMS[(i // (len(_COUNTRIES) * len(_QUESTIONS))) % len(_SYSTEMS)]
        items.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question.format(c=country)},
                ],
                "target": answer.format(c=country, k=capital),
            }
        )
    return items


# Quick mode (CI): one short chat with a ~10-token target, so even captum's token-by-token
# decoding finishes in seconds.
TINY = {**batch_items(1)[0], "granularity": "word"}
INPUTS["tiny"] = TINY


# The long-input target of issue 11: >= 2,000 prompt tokens and >= 100 sentences. A station
# log built from fixed facts (no randomness), with one sentence that answers the question.
_EVENTS = [
    "the lens was cleaned",
    "a boat brought oil",
    "a storm broke a window",
    "the clockwork was oiled",
    "an inspector came",
    "the fog horn sounded",
    "the wall was rebuilt",
    "a new keeper arrived",
]


def _station_log() -> str:
    sentences = []
    for year in range(1870, 1870 + 120):
        sentences.append(f"In {year} {_EVENTS[(year * 7) % len(_EVENTS)]}.")
        if year == 1889:
            sentences.append("That year the engineer Margaret Ellison designed the stone tower.")
    return " ".join(sentences)


RAG = {
    "messages": [
        {"role": "system", "content": "Use the station log to answer the question."},
        {
            "role": "user",
            "content": f"{_station_log()}\n\nQuestion: Who designed the stone tower?",
        },
    ],
    "target": "The stone tower was designed by the engineer Margaret Ellison.",
    "granularity": "sentence",
}
INPUTS["rag"] = RAG

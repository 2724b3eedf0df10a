#!/usr/bin/env python
"""Train the tiny built-in demo model shipped in ``fairforge_attr/demo_model/``.

The demo model is a ~1M parameter causal LM (Llama architecture by default) with a
byte-level BPE tokenizer and a ChatML (Qwen style) chat template.  It is trained from
scratch on ``sample_data/demo_corpus.jsonl`` -- a small synthetic corpus of geography
facts (capital / language / currency / continent for ~40 countries) and a few dozen
general-knowledge Q&A pairs -- until it memorises the answers.  It knows nothing else.

During training, individual prompt words are randomly replaced by ``<|pad|>`` (one pad
per token of the word), so that a prompt with pad-occluded words -- which is what the
library's occlusion methods feed the model -- is in distribution.  As a consequence,
for "What is the capital of France?" the word "France" is the most decisive input word
for log p("The capital of France is Paris.").

Usage::

    python scripts/train_demo_model.py                 # train + save + self-check
    python scripts/train_demo_model.py --write-corpus  # (re)generate the corpus file, exit
    python scripts/train_demo_model.py --check-only    # only run the self-check on the saved model

Deterministic for a fixed ``--seed`` on a given machine / torch build (CPU only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

# Keep the tokenizer trainer and torch reproducible and polite on small machines.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
CORPUS_PATH = REPO / "sample_data" / "demo_corpus.jsonl"
OUT_DIR = REPO / "fairforge_attr" / "demo_model"

EOS = "<|endoftext|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS, PAD, IM_START, IM_END]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# --------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------

# name, capital, language, currency (with article), continent
COUNTRIES = [
    ("France", "Paris", "French", "the euro", "Europe"),
    ("Germany", "Berlin", "German", "the euro", "Europe"),
    ("Italy", "Rome", "Italian", "the euro", "Europe"),
    ("Spain", "Madrid", "Spanish", "the euro", "Europe"),
    ("Portugal", "Lisbon", "Portuguese", "the euro", "Europe"),
    ("Greece", "Athens", "Greek", "the euro", "Europe"),
    ("Poland", "Warsaw", "Polish", "the zloty", "Europe"),
    ("Sweden", "Stockholm", "Swedish", "the krona", "Europe"),
    ("Norway", "Oslo", "Norwegian", "the krone", "Europe"),
    ("Denmark", "Copenhagen", "Danish", "the krone", "Europe"),
    ("Finland", "Helsinki", "Finnish", "the euro", "Europe"),
    ("Ireland", "Dublin", "Irish", "the euro", "Europe"),
    ("Austria", "Vienna", "German", "the euro", "Europe"),
    ("Hungary", "Budapest", "Hungarian", "the forint", "Europe"),
    ("Japan", "Tokyo", "Japanese", "the yen", "Asia"),
    ("China", "Beijing", "Chinese", "the yuan", "Asia"),
    ("India", "New Delhi", "Hindi", "the rupee", "Asia"),
    ("South Korea", "Seoul", "Korean", "the won", "Asia"),
    ("Thailand", "Bangkok", "Thai", "the baht", "Asia"),
    ("Vietnam", "Hanoi", "Vietnamese", "the dong", "Asia"),
    ("Indonesia", "Jakarta", "Indonesian", "the rupiah", "Asia"),
    ("Turkey", "Ankara", "Turkish", "the lira", "Asia"),
    ("Iran", "Tehran", "Persian", "the rial", "Asia"),
    ("Saudi Arabia", "Riyadh", "Arabic", "the riyal", "Asia"),
    ("Pakistan", "Islamabad", "Urdu", "the rupee", "Asia"),
    ("Egypt", "Cairo", "Arabic", "the Egyptian pound", "Africa"),
    ("Kenya", "Nairobi", "Swahili", "the shilling", "Africa"),
    ("Nigeria", "Abuja", "English", "the naira", "Africa"),
    ("Morocco", "Rabat", "Arabic", "the dirham", "Africa"),
    ("Ethiopia", "Addis Ababa", "Amharic", "the birr", "Africa"),
    ("Ghana", "Accra", "English", "the cedi", "Africa"),
    ("Brazil", "Brasilia", "Portuguese", "the real", "South America"),
    ("Argentina", "Buenos Aires", "Spanish", "the peso", "South America"),
    ("Chile", "Santiago", "Spanish", "the peso", "South America"),
    ("Peru", "Lima", "Spanish", "the sol", "South America"),
    ("Colombia", "Bogota", "Spanish", "the peso", "South America"),
    ("Canada", "Ottawa", "English", "the Canadian dollar", "North America"),
    ("Mexico", "Mexico City", "Spanish", "the peso", "North America"),
    ("Cuba", "Havana", "Spanish", "the peso", "North America"),
    ("Australia", "Canberra", "English", "the Australian dollar", "Oceania"),
    ("New Zealand", "Wellington", "English", "the New Zealand dollar", "Oceania"),
]

# question type -> (question paraphrases, answer template, plain fact sentence)
GEO_QUESTIONS = {
    "capital": (
        [
            "What is the capital of {c}?",
            "Tell me the capital of {c}.",
            "Which city is the capital of {c}?",
            "Name the capital of {c}.",
        ],
        "The capital of {c} is {capital}.",
        "{capital} is the capital of {c}.",
    ),
    "language": (
        [
            "What language is spoken in {c}?",
            "What is the official language of {c}?",
            "Which language do people speak in {c}?",
        ],
        "The official language of {c} is {language}.",
        "People in {c} speak {language}.",
    ),
    "currency": (
        [
            "What is the currency of {c}?",
            "Which currency is used in {c}?",
            "What money do people use in {c}?",
        ],
        "The currency of {c} is {currency}.",
        "{Currency} is the currency used in {c}.",
    ),
    "continent": (
        [
            "On which continent is {c}?",
            "Which continent is {c} in?",
            "Where is {c} located?",
        ],
        "{c} is a country in {continent}.",
        "{c} is located in {continent}.",
    ),
}

GEO_SYSTEMS = [
    "Answer concisely.",
    "You are a helpful geography assistant.",
    "You are a helpful assistant.",
    "Answer in one sentence.",
]
GENERAL_SYSTEMS = [
    "Answer concisely.",
    "You are a helpful assistant.",
    "You are a knowledgeable science tutor.",
    "Answer in one sentence.",
]

# question paraphrases, answer
GENERAL_QA = [
    (
        ["Why is the sky blue?", "Why does the sky look blue?"],
        "The sky appears blue due to Rayleigh scattering of sunlight.",
    ),
    (
        ["Why is the ocean blue?", "Why does the ocean look blue?"],
        "The ocean looks blue because water absorbs red light.",
    ),
    (
        ["Why is the sky dark?", "Why is the sky dark at night?"],
        "The sky is dark at night because the Sun is below the horizon.",
    ),
    (
        ["Why is the grass green?", "Why are plants green?"],
        "Grass is green because its cells contain chlorophyll.",
    ),
    (
        ["What is machine learning?", "Explain machine learning."],
        "Machine learning is a subset of AI that enables systems to learn from data.",
    ),
    (
        ["What is deep learning?", "Explain deep learning."],
        "Deep learning uses neural networks with many layers to process complex patterns.",
    ),
    (
        ["Who developed the theory of relativity?", "Who came up with the theory of relativity?"],
        "Albert Einstein developed the theory of relativity.",
    ),
    (
        ["What is the theory of relativity?", "Explain the theory of relativity."],
        "The theory of relativity explains how space, time and gravity are connected.",
    ),
    (
        ["What is Einstein famous for?", "Why is Albert Einstein famous?"],
        "Einstein is famous for the theory of relativity and the equation E = mc^2.",
    ),
    (
        ["What does E = mc^2 mean?", "Explain E = mc^2."],
        "E = mc^2 states that energy equals mass times the speed of light squared.",
    ),
    (
        ["What is photosynthesis?", "How do plants make food?"],
        "Photosynthesis is how plants turn sunlight, water and carbon dioxide into sugar.",
    ),
    (
        ["What is the boiling point of water?", "At what temperature does water boil?"],
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    (
        ["What is the freezing point of water?", "At what temperature does water freeze?"],
        "Water freezes at 0 degrees Celsius.",
    ),
    (
        ["What is the largest planet in the solar system?", "Which planet is the largest?"],
        "Jupiter is the largest planet in the solar system.",
    ),
    (
        ["What is the closest star to Earth?", "Which star is nearest to Earth?"],
        "The Sun is the closest star to Earth.",
    ),
    (
        ["How many continents are there?", "How many continents does Earth have?"],
        "There are seven continents.",
    ),
    (
        ["What is gravity?", "Explain gravity."],
        "Gravity is the force that pulls objects with mass toward each other.",
    ),
    (
        ["What is DNA?", "What does DNA do?"],
        "DNA is the molecule that carries genetic information in living things.",
    ),
    (
        ["Who wrote Romeo and Juliet?", "Who is the author of Romeo and Juliet?"],
        "William Shakespeare wrote Romeo and Juliet.",
    ),
    (
        ["Who painted the Mona Lisa?", "Who is the painter of the Mona Lisa?"],
        "Leonardo da Vinci painted the Mona Lisa.",
    ),
    (
        ["What is the speed of light?", "How fast does light travel?"],
        "Light travels at about 300,000 kilometers per second.",
    ),
    (
        ["What is the chemical symbol for gold?", "Which chemical symbol stands for gold?"],
        "The chemical symbol for gold is Au.",
    ),
    (["What is H2O?", "What is the chemical formula for water?"], "H2O is the chemical formula for water."),
    (
        ["What is a neural network?", "Explain neural networks."],
        "A neural network is a model of connected layers of units that learns from data.",
    ),
    (
        ["What is artificial intelligence?", "What is AI?"],
        "Artificial intelligence is the field of building machines that perform intelligent tasks.",
    ),
    (
        ["What is a language model?", "Explain language models."],
        "A language model predicts the next word in a sequence of text.",
    ),
    (
        ["What is a transformer model?", "Explain the transformer architecture."],
        "A transformer is a neural network that uses attention to process sequences.",
    ),
    (
        ["What is attribution in machine learning?", "What does feature attribution mean?"],
        "Attribution explains which parts of the input influenced a model's output.",
    ),
    (
        ["What is Python?", "Tell me about the Python language."],
        "Python is a popular programming language known for its readable syntax.",
    ),
    (
        ["Why do leaves change color in autumn?", "Why do leaves turn yellow in the fall?"],
        "Leaves change color in autumn because their chlorophyll breaks down.",
    ),
    (
        ["Why is the ocean salty?", "Why is sea water salty?"],
        "The ocean is salty because rivers carry dissolved minerals into it.",
    ),
    (
        ["What causes rain?", "How does rain form?"],
        "Rain forms when water vapor in clouds condenses into drops that fall.",
    ),
    (
        ["What causes the seasons?", "Why do we have seasons?"],
        "The seasons are caused by the tilt of the Earth's axis.",
    ),
    (
        ["How many days are in a year?", "How long is a year?"],
        "A year has 365 days, or 366 days in a leap year.",
    ),
    (
        ["What is the largest ocean?", "Which ocean is the biggest?"],
        "The Pacific Ocean is the largest ocean on Earth.",
    ),
    (
        ["What is the tallest mountain?", "Which mountain is the highest?"],
        "Mount Everest is the tallest mountain on Earth.",
    ),
    (
        ["What is the longest river?", "Which river is the longest?"],
        "The Nile is often considered the longest river in the world.",
    ),
    (
        ["Who was the first person on the Moon?", "Who first walked on the Moon?"],
        "Neil Armstrong was the first person to walk on the Moon.",
    ),
    (["What is an atom?", "Explain what an atom is."], "An atom is the smallest unit of a chemical element."),
    (
        ["What is a black hole?", "Explain black holes."],
        "A black hole is a region of space where gravity is so strong that light cannot escape.",
    ),
    (
        ["What is climate change?", "Explain climate change."],
        "Climate change is the long-term shift in global temperatures and weather patterns.",
    ),
]

GENERAL_FACTS = [
    "Rayleigh scattering of sunlight makes the sky look blue.",
    "Albert Einstein was a physicist who developed the theory of relativity.",
    "Machine learning systems learn patterns from data.",
    "Deep learning is a part of machine learning based on neural networks.",
    "Neural networks are made of layers of connected units.",
    "Plants use photosynthesis to turn sunlight into energy.",
    "Jupiter is a gas giant and the largest planet.",
    "The Earth orbits the Sun once a year.",
    "Water is made of hydrogen and oxygen.",
    "Shakespeare was an English playwright and poet.",
    "Leonardo da Vinci was an Italian painter and inventor.",
    "The Pacific Ocean lies between Asia and the Americas.",
    "Mount Everest is in the Himalayas.",
    "Neil Armstrong walked on the Moon in 1969.",
    "Gold is a precious metal with the symbol Au.",
    "A language model assigns probabilities to sequences of words.",
    "Attribution methods measure how much each input token matters.",
    "There are seven continents: Africa, Antarctica, Asia, Australia, Europe, North America "
    "and South America.",
]


def _fill(template: str, country: tuple[str, str, str, str, str]) -> str:
    c, capital, language, currency, continent = country
    return template.format(
        c=c,
        capital=capital,
        language=language,
        currency=currency,
        Currency=currency[0].upper() + currency[1:],
        continent=continent,
    )


def generate_corpus(seed: int = 0) -> list[dict]:
    """Deterministically build the demo corpus (list of JSON-able dicts)."""
    rng = random.Random(seed)
    rows: list[dict] = []

    for country in COUNTRIES:
        for _qtype, (questions, answer_t, _fact) in GEO_QUESTIONS.items():
            answer = _fill(answer_t, country)
            for i, q_t in enumerate(questions):
                q = _fill(q_t, country)
                rows.append({"messages": [{"role": "user", "content": q}], "target": answer})
                # canonical question always also appears with a system message; others
                # sometimes
                if i == 0 or rng.random() < 0.3:
                    system = rng.choice(GEO_SYSTEMS)
                    rows.append(
                        {
                            "messages": [
                                {"role": "system", "content": system},
                                {"role": "user", "content": q},
                            ],
                            "target": answer,
                        }
                    )
        # one two-turn conversation per country: capital, then a follow-up about the language
        c = country[0]
        first = _fill(GEO_QUESTIONS["capital"][0][0], country)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": first},
                    {"role": "assistant", "content": _fill(GEO_QUESTIONS["capital"][1], country)},
                    {"role": "user", "content": f"And what language is spoken in {c}?"},
                ],
                "target": _fill(GEO_QUESTIONS["language"][1], country),
            }
        )

    for questions, answer in GENERAL_QA:
        for i, q in enumerate(questions):
            rows.append({"messages": [{"role": "user", "content": q}], "target": answer})
            if i == 0 or rng.random() < 0.4:
                system = rng.choice(GENERAL_SYSTEMS)
                rows.append(
                    {
                        "messages": [
                            {"role": "system", "content": system},
                            {"role": "user", "content": q},
                        ],
                        "target": answer,
                    }
                )

    for country in COUNTRIES:
        for _qtype, (_qs, _answer_t, fact_t) in GEO_QUESTIONS.items():
            rows.append({"text": _fill(fact_t, country)})
    for _qs, answer in GENERAL_QA:
        rows.append({"text": answer})
    for fact in GENERAL_FACTS:
        rows.append({"text": fact})
    return rows


def write_corpus(path: Path, seed: int) -> int:
    rows = generate_corpus(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def read_corpus(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


def render_chat(messages: list[dict], add_generation_prompt: bool) -> str:
    """Python mirror of CHAT_TEMPLATE (checked against apply_chat_template at the end)."""
    s = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    if add_generation_prompt:
        s += f"{IM_START}assistant\n"
    return s


def training_texts(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if "text" in r:
            out.append(r["text"])
        else:
            out.append(render_chat(r["messages"], True) + r["target"] + IM_END)
    return out


def build_tokenizer(rows: list[dict], vocab_size: int):
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    # trim_offsets=True: the offset of a token like "ĠFrance" covers "France", not " France"
    tk.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = training_texts(rows)
    # also some generic text so common English words get merged in a sensible way
    texts += [
        "The quick brown fox jumps over the lazy dog.",
        "Please answer the question below in a short sentence.",
    ]
    tk.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=512,
        padding_side="right",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_tokenizer_config_portable(out_dir: Path) -> None:
    """transformers 5 saves ``tokenizer_class: TokenizersBackend`` and a list-valued
    ``extra_special_tokens`` which transformers 4.x cannot read.  Rewrite the config in the
    classic form (both 4.x and 5.x load it) and also inline the chat template."""
    p = out_dir / "tokenizer_config.json"
    cfg = json.loads(p.read_text(encoding="utf-8"))
    cfg.pop("backend", None)
    cfg.pop("is_local", None)
    cfg.pop("local_files_only", None)
    extra = cfg.pop("extra_special_tokens", None)
    if isinstance(extra, list):
        cfg["additional_special_tokens"] = extra
    elif extra is not None:
        cfg["extra_special_tokens"] = extra
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["bos_token"] = None
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["clean_up_tokenization_spaces"] = False
    p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")


# --------------------------------------------------------------------------------------
# Examples with pad augmentation
# --------------------------------------------------------------------------------------

WORD_RE = re.compile(r"\w+|[^\w\s]+")


class Example:
    """Token ids + loss mask + the token groups ("words") that may be pad-occluded."""

    def __init__(self, ids: list[int], loss: list[bool], words: list[list[int]], messages: list[list[int]]):
        self.ids = ids
        self.loss = loss  # loss[i]: predict ids[i] (from position i-1)
        self.words = words  # token index groups of prompt-content words
        self.messages = messages  # token index groups of whole prompt messages (content)


def encode_row(tok, row: dict) -> Example:
    backend = tok.backend_tokenizer if hasattr(tok, "backend_tokenizer") else tok._tokenizer
    if "text" in row:
        text = row["text"] + EOS
        enc = backend.encode(text, add_special_tokens=False)
        return Example(list(enc.ids), [True] * len(enc.ids), [], [])

    # render piecewise to know where every prompt message content lies
    pieces: list[tuple[str, str]] = []
    for m in row["messages"]:
        pieces.append((f"{IM_START}{m['role']}\n", "markup"))
        pieces.append((m["content"], "content"))
        pieces.append((f"{IM_END}\n", "markup"))
    pieces.append((f"{IM_START}assistant\n", "markup"))
    pieces.append((row["target"] + IM_END, "target"))
    text, spans, pos = "", [], 0
    for s, kind in pieces:
        spans.append((pos, pos + len(s), kind))
        text += s
        pos += len(s)
    enc = backend.encode(text, add_special_tokens=False)
    ids, offsets = list(enc.ids), list(enc.offsets)
    target_start = next(a for a, _b, k in spans if k == "target")
    loss = [o[0] >= target_start for o in offsets]

    def tokens_in(a: int, b: int) -> list[int]:
        return [i for i, (s, e) in enumerate(offsets) if s < b and e > a and e > s]

    words, messages = [], []
    for a, b, kind in spans:
        if kind != "content":
            continue
        messages.append(tokens_in(a, b))
        for m in WORD_RE.finditer(text[a:b]):
            group = tokens_in(a + m.start(), a + m.end())
            if group:
                words.append(group)
    return Example(ids, loss, words, messages)


def augment(ex: Example, rng: random.Random, pad_id: int, p_word: float, p_message: float) -> list[int]:
    ids = list(ex.ids)
    for group in ex.words:
        if rng.random() < p_word:
            for i in group:
                ids[i] = pad_id
    if len(ex.messages) > 1:  # occasionally occlude a whole message (e.g. the system prompt)
        for group in ex.messages[:-1]:
            if rng.random() < p_message:
                for i in group:
                    ids[i] = pad_id
    return ids


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def build_model(tok, arch: str, hidden: int, layers: int, heads: int, intermediate: int):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    kw = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids(EOS),
        pad_token_id=tok.convert_tokens_to_ids(PAD),
        rms_norm_eps=1e-6,
        initializer_range=0.02,
    )
    config = LlamaConfig(**kw) if arch == "llama" else Qwen3Config(**kw)
    return AutoModelForCausalLM.from_config(config)


def collate(seqs: list[list[int]], losses: list[list[bool]], pad_id: int):
    import torch

    n = max(len(s) for s in seqs)
    inp = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    lab = torch.full((len(seqs), n), -100, dtype=torch.long)
    for b, (s, lm) in enumerate(zip(seqs, losses)):
        inp[b, : len(s)] = torch.tensor(s)
        lab[b, : len(s)] = torch.tensor([t if m else -100 for t, m in zip(s, lm)])
    return inp, lab


def train(args) -> None:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    rows = read_corpus(CORPUS_PATH)
    n_chat = sum(1 for r in rows if "messages" in r)
    print(f"corpus: {len(rows)} rows ({n_chat} chat, {len(rows) - n_chat} plain text)")

    t0 = time.time()
    tok = build_tokenizer(rows, args.vocab_size)
    pad_id = tok.convert_tokens_to_ids(PAD)
    print(f"tokenizer: vocab {len(tok)}  ({time.time() - t0:.1f}s)")

    examples = [encode_row(tok, r) for r in rows]
    # sanity: piecewise-rendered encoding == tokenizer(apply_chat_template(...) + target)
    for r, ex in zip(rows[:50], examples[:50]):
        if "messages" in r:
            s = tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
            ref = tok(s + r["target"] + IM_END, add_special_tokens=False)["input_ids"]
            assert list(ref) == ex.ids, "chat template / manual rendering mismatch"
    lens = [len(e.ids) for e in examples]
    print(f"sequences: max len {max(lens)}, mean {sum(lens) / len(lens):.1f}")

    model = build_model(tok, args.arch, args.hidden, args.layers, args.heads, args.intermediate)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.arch}, {n_params:,} parameters")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )
    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = min(200, total // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        prog = (step - warmup) / max(1, total - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * prog)))

    model.train()
    step = 0
    t_train = time.time()
    for epoch in range(args.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        # bucket roughly by length inside chunks to cut padding waste
        chunk = args.batch_size * 8
        batches = []
        for i in range(0, len(order), chunk):
            part = sorted(order[i : i + chunk], key=lambda j: len(examples[j].ids))
            batches += [part[k : k + args.batch_size] for k in range(0, len(part), args.batch_size)]
        rng.shuffle(batches)
        ep_loss, ep_n = 0.0, 0
        for batch in batches:
            seqs = [augment(examples[j], rng, pad_id, args.p_word, args.p_message) for j in batch]
            inp, lab = collate(seqs, [examples[j].loss for j in batch], pad_id)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = model(input_ids=inp, labels=lab)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ep_loss += out.loss.item()
            ep_n += 1
            step += 1
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(
                f"epoch {epoch + 1:3d}/{args.epochs}  step {step:5d}  loss {ep_loss / ep_n:.4f}  "
                f"lr {lr_at(step - 1):.2e}  {time.time() - t_train:.0f}s",
                flush=True,
            )
    print(f"training time: {time.time() - t_train:.1f}s")

    save(model, tok, n_params, args)


def save(model, tok, n_params: int, args) -> None:
    from transformers import GenerationConfig

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for f in OUT_DIR.iterdir():  # remove stale files, keep the README
        if f.is_file() and f.name != "README.md":
            f.unlink()
    model.eval()
    im_end_id = tok.convert_tokens_to_ids(IM_END)
    eos_id = tok.convert_tokens_to_ids(EOS)
    pad_id = tok.convert_tokens_to_ids(PAD)
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end_id, eos_id],
        pad_token_id=pad_id,
        do_sample=False,
        max_new_tokens=48,
    )
    model.save_pretrained(OUT_DIR)
    tok.save_pretrained(OUT_DIR)
    make_tokenizer_config_portable(OUT_DIR)
    write_readme(n_params, len(tok), args)
    total = 0
    for f in sorted(OUT_DIR.iterdir()):
        f.chmod(0o644)  # safetensors writes the weights 0600
        total += f.stat().st_size
        print(f"  {f.name:28s} {f.stat().st_size:>10,d} bytes")
    print(f"saved to {OUT_DIR} ({total / 1e6:.2f} MB)")


def write_readme(n_params: int, vocab: int, args) -> None:
    text = f"""# fairforge_attr demo model

A **tiny** causal language model that ships inside the package so that examples, tests and
the CLI work offline (no model hub).  It is *not* a useful language model: it only
memorises its small synthetic training corpus (`sample_data/demo_corpus.jsonl`) --
capitals, languages, currencies and continents of ~40 countries plus a few dozen general
science / AI questions ("Why is the sky blue?", "What is machine learning?", ...).  On
anything else it produces nonsense.

* Architecture: `{"LlamaForCausalLM" if args.arch == "llama" else "Qwen3ForCausalLM"}`, \
hidden {args.hidden}, {args.layers} layers, {args.heads} heads,
  MLP {args.intermediate}, tied embeddings, {n_params:,} parameters, float32 safetensors.
* Tokenizer: byte-level BPE (vocab {vocab}, trained with `tokenizers` on the corpus, so any
  text encodes without unknown tokens), saved as a fast `PreTrainedTokenizerFast`.
  Offsets are trimmed (`trim_offsets=True`): the token `ĠFrance` maps to the characters
  `France`, not ` France`.
* Special tokens: `<|endoftext|>` (eos), `<|pad|>` (pad), `<|im_start|>`, `<|im_end|>`.
  `generation_config.json` stops on `<|im_end|>` or `<|endoftext|>`.
* Chat template (ChatML / Qwen style, no default system prompt), stored both in
  `chat_template.jinja` and inline in `tokenizer_config.json`:

  ```
  <|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n
  ```

* Training: `python scripts/train_demo_model.py` (seed {args.seed}, AdamW, {args.epochs} epochs,
  CPU, a few minutes).  Loss on the assistant answers (+ `<|im_end|>`) and on plain fact
  sentences.  While training, each prompt word is replaced by `<|pad|>` (one pad per
  token) with probability {args.p_word}, so pad-occluded prompts -- what the occlusion
  attribution methods feed the model -- are in distribution.  As a result, for
  "What is the capital of France?" -> "The capital of France is Paris." the word
  `France` is the most important prompt word.  Occlude by replacing the word's *token ids*
  (including the leading-space token `ĠFrance`) with the pad id; a text-level substitution
  like `" <|pad|>"` leaves a stray `Ġ` token and is less in distribution.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
path = "fairforge_attr/demo_model"
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
prompt = tok.apply_chat_template(
    [{{"role": "user", "content": "What is the capital of France?"}}],
    tokenize=False, add_generation_prompt=True)
ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
print(tok.decode(model.generate(ids)[0, ids.shape[1]:], skip_special_tokens=True))
# The capital of France is Paris.
```
"""
    (OUT_DIR / "README.md").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------

CHECK_ITEMS = [
    ([{"role": "user", "content": "What is the capital of France?"}], "The capital of France is Paris."),
    (
        [{"role": "user", "content": "Why is the sky blue?"}],
        "The sky appears blue due to Rayleigh scattering of sunlight.",
    ),
    (
        [{"role": "user", "content": "What is machine learning?"}],
        "Machine learning is a subset of AI that enables systems to learn from data.",
    ),
    (
        [{"role": "user", "content": "What is deep learning?"}],
        "Deep learning uses neural networks with many layers to process complex patterns.",
    ),
    (
        [
            {"role": "system", "content": "You are a helpful geography assistant."},
            {"role": "user", "content": "What is the capital of Japan?"},
        ],
        "The capital of Japan is Tokyo.",
    ),
    (
        [{"role": "user", "content": "Which currency is used in Kenya?"}],
        "The currency of Kenya is the shilling.",
    ),
    (
        [{"role": "user", "content": "What language is spoken in Brazil?"}],
        "The official language of Brazil is Portuguese.",
    ),
    ([{"role": "user", "content": "On which continent is Australia?"}], "Australia is a country in Oceania."),
    (
        [{"role": "user", "content": "Tell me the capital of New Zealand."}],
        "The capital of New Zealand is Wellington.",
    ),
    (
        [{"role": "user", "content": "Who developed the theory of relativity?"}],
        "Albert Einstein developed the theory of relativity.",
    ),
    (
        [
            {"role": "system", "content": "Answer concisely."},
            {"role": "user", "content": "What is the currency of Germany?"},
        ],
        "The currency of Germany is the euro.",
    ),
    (
        [
            {"role": "user", "content": "What is the capital of Germany?"},
            {"role": "assistant", "content": "The capital of Germany is Berlin."},
            {"role": "user", "content": "And what language is spoken in Germany?"},
        ],
        "The official language of Germany is German.",
    ),
]


def target_logprob(model, tok, prompt_ids: list[int], target: str) -> float:
    import torch

    t_ids = tok(target, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + t_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    lp = torch.log_softmax(logits[:-1], dim=-1)
    n = len(prompt_ids)
    return float(sum(lp[n - 1 + k, t] for k, t in enumerate(t_ids)))


def occlusion_table(model, tok, messages: list[dict], target: str) -> list[tuple[str, float]]:
    """Drop in log p(target) when each word of the last user message is replaced by pad."""
    pad_id = tok.convert_tokens_to_ids(PAD)
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = list(enc["input_ids"]), enc["offset_mapping"]
    content = messages[-1]["content"]
    c0 = prompt.rindex(content)
    base = target_logprob(model, tok, ids, target)
    rows = []
    for m in WORD_RE.finditer(content):
        a, b = c0 + m.start(), c0 + m.end()
        occ = [pad_id if (s < b and e > a and e > s) else t for t, (s, e) in zip(ids, offs)]
        rows.append((m.group(), base - target_logprob(model, tok, occ, target)))
    return [("<full prompt>", base), *rows]


def self_check() -> bool:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(OUT_DIR)
    model = AutoModelForCausalLM.from_pretrained(OUT_DIR)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\n=== self-check (reloaded from {OUT_DIR.relative_to(REPO)}) ===")
    print(
        f"model {type(model).__name__} ({n_params:,} params, dtype {model.dtype}); "
        f"tokenizer {type(tok).__name__} fast={tok.is_fast} vocab={len(tok)}"
    )
    ok = True

    # chat template
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    tmpl_ok = rendered == render_chat(msgs, True)
    print(f"chat template round-trip: {'ok' if tmpl_ok else 'MISMATCH ' + repr(rendered)}")
    ok &= tmpl_ok

    # offsets
    prompt = tok.apply_chat_template(CHECK_ITEMS[0][0], tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    pieces = [prompt[s:e] for s, e in enc["offset_mapping"]]
    print(f"offsets: {pieces}")
    offs_ok = "France" in pieces and "capital" in pieces
    ok &= offs_ok

    # unknown-free encoding of arbitrary text
    weird = "Ünïcödé ✓ 東京 🙂 tabs\tand\nnewlines"
    rt = tok.decode(tok(weird, add_special_tokens=False)["input_ids"])
    print(f"byte-level round trip of arbitrary text: {'ok' if rt == weird else 'FAILED'}")
    ok &= rt == weird

    # greedy generation
    hits = 0
    for messages, target in CHECK_ITEMS:
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40, do_sample=False)
        gen = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        hit = gen == target
        hits += hit
        print(f"  [{'ok' if hit else 'XX'}] {messages[-1]['content']!r} -> {gen!r}")
    acc = hits / len(CHECK_ITEMS)
    print(f"greedy exact-match accuracy: {hits}/{len(CHECK_ITEMS)} = {acc:.2f}")
    ok &= acc >= 0.9

    for messages, target, key in [
        (CHECK_ITEMS[0][0], CHECK_ITEMS[0][1], "France"),
        (CHECK_ITEMS[1][0], CHECK_ITEMS[1][1], None),
    ]:
        table = occlusion_table(model, tok, messages, target)
        print(f"\nlog p({target!r} | {messages[-1]['content']!r}) = {table[0][1]:.3f}")
        print("  drop when the word is replaced by <|pad|>:")
        for w, d in table[1:]:
            print(f"    {w:12s} {d:8.3f}")
        best = max(table[1:], key=lambda r: r[1])[0]
        print(f"  most decisive word: {best!r}")
        if key is not None:
            ok &= best == key
    print(f"\nSELF-CHECK {'PASSED' if ok else 'FAILED'}")
    return bool(ok)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--write-corpus", action="store_true", help="(re)generate sample_data/demo_corpus.jsonl and exit"
    )
    ap.add_argument("--check-only", action="store_true", help="only run the self-check")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--arch", choices=["llama", "qwen3"], default="llama")
    ap.add_argument("--vocab-size", type=int, default=1536)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=384)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--p-word", type=float, default=0.12, help="probability of replacing a prompt word by <|pad|> tokens"
    )
    ap.add_argument(
        "--p-message",
        type=float,
        default=0.03,
        help="probability of replacing a whole non-final message by pads",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    if args.write_corpus:
        n = write_corpus(CORPUS_PATH, seed=0)
        print(f"wrote {n} rows to {CORPUS_PATH}")
        return 0
    if not args.check_only:
        if not CORPUS_PATH.exists():
            print(f"{CORPUS_PATH} missing; run with --write-corpus first", file=sys.stderr)
            return 1
        t0 = time.time()
        train(args)
        print(f"total time: {time.time() - t0:.1f}s")
    return 0 if self_check() else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Builds moby_next.jsonl: "which continuation follows this Moby-Dick sentence" (4 choices).

    python python/tests/tasks/make_moby_next.py ~/.cache/lesa/fixtures/text/moby-dick.txt > moby_next.jsonl

Each item: the first half of a sentence (context), its true second half and the second halves
of three other sentences (distractors), the true one at a seeded random position (label).
The committed file is this script's output on the fixture text (public domain).
"""
import json
import random
import re
import sys

N_ITEMS, N_CHOICES, SEED = 40, 4, 14

text = open(sys.argv[1], encoding="utf-8").read()
body = text[text.index("Call me Ishmael"):]
sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", body))]
pool = [s for s in sentences if 16 <= len(s.split()) <= 32 and '"' not in s and "“" not in s]
rng = random.Random(SEED)
picked = rng.sample(pool, N_ITEMS * N_CHOICES)
for i in range(N_ITEMS):
    group = picked[i * N_CHOICES:(i + 1) * N_CHOICES]
    halves = [(w[:len(w) // 2], w[len(w) // 2:]) for w in (s.split() for s in group)]
    context = " ".join(halves[0][0])
    endings = [" ".join(h[1]) for h in halves]
    order = list(range(N_CHOICES))
    rng.shuffle(order)
    print(json.dumps({"context": context, "choices": [endings[j] for j in order], "label": order.index(0)},
                     ensure_ascii=False))

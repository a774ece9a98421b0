#!/usr/bin/env python3
"""Generates campaigns/scenarios/records-sample.csv: 3,000 synthetic call
records (not real calls) in the replay format `dialler simulate` reads, so
the replay path has a shipped example. Real records exported from a
dialler's CDRs go in the same columns."""
import math
import random

random.seed(20261123)


def ln(mean, sd):
    s2 = math.log(1 + (sd / mean) ** 2)
    return random.lognormvariate(math.log(mean) - s2 / 2, math.sqrt(s2))


rows = ["outcome,ring_s,talk_s,wrap_s,patience_s,converted"]
for _ in range(3000):
    u = random.random()
    if u < 0.27:
        conv = 1 if random.random() < 0.1 else 0
        rows.append(f"human,{ln(9, 4):.1f},{ln(210, 140):.1f},{ln(25, 10):.1f},{ln(5, 2):.1f},{conv}")
    elif u < 0.40:
        rows.append(f"machine,{ln(12, 4):.1f},0,0,,0")
    elif u < 0.48:
        rows.append(f"busy,{ln(4, 1):.1f},0,0,,0")
    elif u < 0.93:
        rows.append("no_answer,25.0,0,0,,0")
    else:
        rows.append(f"failure,{ln(1.5, 0.5):.1f},0,0,,0")
with open("campaigns/scenarios/records-sample.csv", "w") as f:
    f.write("\n".join(rows) + "\n")

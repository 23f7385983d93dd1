"""Cue tokens: lowercase word/hashtag tokens ('#' stripped) from train+val with the most hate-skewed label rate."""
import re, numpy as np
from collections import Counter
TOK = re.compile(r"[a-z0-9_']+")

def toks(t):
    return set(TOK.findall(t.lower().replace("’", "'")))

def cue_table(X, y, min_df=40):
    df, pos = Counter(), Counter()
    for t, l in zip(X, y):
        for w in toks(t):
            df[w] += 1; pos[w] += int(l)
    prior = y.mean()
    rows = [(w, df[w], (pos[w] + 2 * prior) / (df[w] + 2)) for w in df if df[w] >= min_df]
    return sorted(rows, key=lambda r: -r[2]), prior

def top_cues(X, y, k=20, min_df=40):
    tab, _ = cue_table(X, y, min_df)
    return [w for w, _, _ in tab[:k]]

"""Mean AUROC of two scorecard_variant.py CSVs on their common (set, size, seed) cells, per size and per set.

  .venv/bin/python benchmarks/scorecard_compare.py base.csv candidate.csv
"""

from __future__ import annotations

import collections
import csv
import statistics as st
import sys


def load(path: str) -> dict[tuple[str, int, int], float]:
    # A failed run (nan) counts as a random ranking, as in scorecard.py.
    return {(r["set"], int(r["size"]), int(r["seed"])): float(r["auroc"]) if r["auroc"] != "nan" else 0.5
            for r in csv.DictReader(open(path)) if r["method"] == "project"}


def main(base_path: str, candidate_path: str) -> None:
    base, cand = load(base_path), load(candidate_path)
    keys = sorted(set(base) & set(cand))
    print("size    cells   base   candidate")
    for size in (200, 1000, 5000, None):
        ks = [k for k in keys if size is None or k[1] == size]
        if ks:
            print(f"{size or 'all':<7} {len(ks):5d}  {st.mean(base[k] for k in ks):.4f}  {st.mean(cand[k] for k in ks):.4f}")
    per_set = collections.defaultdict(list)
    for k in keys:
        per_set[k[0]].append(cand[k] - base[k])
    for name, diffs in per_set.items():
        print(f"{name:<18} {st.mean(diffs):+.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

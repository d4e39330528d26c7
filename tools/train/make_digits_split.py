#!/usr/bin/env python3
"""Write data/digits/: scikit-learn's bundled 8x8 handwritten digits, split once.

    python3 tools/train/make_digits_split.py [--out data/digits] [--seed 14]

The data are sklearn.datasets.load_digits() (1,797 images of 8x8 pixels, integers
0..16, 10 classes; shipped inside the scikit-learn wheel, nothing is downloaded).
Pixels are scaled to [-1, 1] as p / 8 - 1 (exact in float32). The split is
stratified by label: for each digit its images, in load_digits() order, are
shuffled by numpy's PCG64 generator seeded with --seed (one generator, the digits
0..9 in turn); the first round(25 %) go to `test`, the next round(15 %) to `tune`,
the rest to `train`. Within a split the images keep load_digits() order.

Files (NumPy .npy, readable by the lgd tool's .npy module, examples/npy):
  {train,tune,test}_images.npy  float32 '<f4' [N][64]: row-major 8x8 images in [-1, 1]
                                (= [C=1][H=8][W=8] flattened, the `unet` layout)
  {train,tune,test}_labels.npy  uint8 '|u1' [N]: the digit 0..9
  manifest.json                 source, licence, seed, counts, the indices into
                                load_digits() of every split, SHA-256 of every file
The output is byte-for-byte the same on every run (checked by --check).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "data", "digits")
SPLITS = ("train", "tune", "test")
TEST_FRACTION = 0.25
TUNE_FRACTION = 0.15


def split_indices(labels, seed):
    """{split: sorted indices} stratified by label (see the module docstring)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {s: [] for s in SPLITS}
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(TEST_FRACTION * idx.size))
        n_tune = int(round(TUNE_FRACTION * idx.size))
        out["test"].extend(idx[:n_test].tolist())
        out["tune"].extend(idx[n_test:n_test + n_tune].tolist())
        out["train"].extend(idx[n_test + n_tune:].tolist())
    return {s: sorted(v) for s, v in out.items()}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build(out_dir, seed):
    import sklearn
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.asarray(d.data, dtype=np.float64)          # [1797][64], 0..16
    labels = np.asarray(d.target, dtype=np.int64)
    if pixels.shape != (1797, 64) or pixels.min() < 0 or pixels.max() > 16:
        sys.exit("make_digits_split: unexpected load_digits() data %s" % (pixels.shape,))
    images = (pixels / 8.0 - 1.0).astype(np.float32)        # exact: p / 8 is a dyadic
    parts = split_indices(labels, seed)
    all_idx = sorted(parts["train"] + parts["tune"] + parts["test"])
    if all_idx != list(range(len(labels))):
        sys.exit("make_digits_split: the splits do not partition the data")

    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for s in SPLITS:
        idx = np.asarray(parts[s], dtype=np.int64)
        for kind, arr in (("images", images[idx]), ("labels", labels[idx].astype(np.uint8))):
            name = "%s_%s.npy" % (s, kind)
            np.save(os.path.join(out_dir, name), np.ascontiguousarray(arr), allow_pickle=False)
            files[name] = sha256(os.path.join(out_dir, name))
    manifest = {
        "source": "sklearn.datasets.load_digits() (scikit-learn %s, bundled file "
                  "sklearn/datasets/data/digits.csv.gz): a copy of the test set "
                  "(optdigits.tes, 1,797 images) of the UCI 'Optical Recognition of "
                  "Handwritten Digits' data set (E. Alpaydin, C. Kaynak, 1998)"
                  % sklearn.__version__,
        "licence": "UCI Machine Learning Repository data set 80 (doi:10.24432/C50P49): "
                   "CC BY 4.0 as UCI gives it (not re-verified offline; see "
                   "data/digits/README.md); the copy read ships in scikit-learn "
                   "(BSD-3-Clause). Changes: rescaled to [-1, 1], split in three.",
        "scaling": "float32 pixel / 8 - 1, in [-1, 1]; images row-major 8x8",
        "seed": seed,
        "rule": "stratified by label: per digit, numpy PCG64(seed).permutation of its "
                "indices (digits 0..9 in turn, one generator); first round(0.25 n) test, "
                "next round(0.15 n) tune, rest train; each split sorted by index",
        "counts": {s: len(parts[s]) for s in SPLITS},
        "counts_per_label": {s: np.bincount(labels[parts[s]], minlength=10).tolist()
                             for s in SPLITS},
        "indices": parts,
        "sha256": files,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--check", action="store_true",
                   help="rebuild into a temporary directory and compare with --out byte for byte")
    a = p.parse_args()
    if a.check:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            build(tmp, a.seed)
            bad = []
            for name in sorted(os.listdir(tmp)):
                with open(os.path.join(tmp, name), "rb") as f1:
                    want = f1.read()
                try:
                    with open(os.path.join(a.out, name), "rb") as f2:
                        have = f2.read()
                except OSError:
                    have = None
                if want != have:
                    bad.append(name)
            if bad:
                sys.exit("make_digits_split --check: differ: %s" % ", ".join(bad))
            print("make_digits_split --check: %s is up to date" % a.out)
        return
    m = build(a.out, a.seed)
    print("wrote %s: train %d, tune %d, test %d (seed %d)" % (
        a.out, m["counts"]["train"], m["counts"]["tune"], m["counts"]["test"], a.seed))


if __name__ == "__main__":
    main()

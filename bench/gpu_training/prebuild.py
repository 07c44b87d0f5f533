"""Step 1 of training the span reader on a lent GPU machine: what travels there.

    .venv/bin/python bench/gpu_training/prebuild.py ../shared/data/squad1.1-train.json WORK

The machine has PyTorch and transformers but not our index's libraries (faiss, syntok,
bm25s, PyStemmer), and a call carries at most 64 MiB. So the examples ``qa train-reader``
would build (the same functions, the same seed) are built here and pickled (13 MB
compressed), and the base model's weights go in fp16 (45 MB instead of 91; ``run.py``
turns them back into fp32 there, and the word-piece table, which training keeps frozen,
comes from the bundled fp32 model again at export).
"""

from __future__ import annotations

import argparse
import lzma
import pickle
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from qa.index.embedding import default_model_path
from qa.training.examples import load_articles, split_articles, training_examples, validation_examples
from qa.training.train import Settings

BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("work", type=Path)
    args = parser.parse_args()
    seed, held_out = Settings.seed, Settings.held_out_articles
    train, val = split_articles(load_articles(args.dataset), held_out, seed)
    data = {
        "p0": training_examples(train, seed),
        "p1": training_examples(train, seed + 1, reword=True),
        "val": validation_examples(val, seed),
        "val_reword": validation_examples(val, seed, reword=True),
    }
    print({name: len(examples) for name, examples in data.items()})
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "data.pkl.xz").write_bytes(lzma.compress(pickle.dumps(data), preset=6))
    base, out = Path(default_model_path()), args.work / "base"
    out.mkdir(exist_ok=True)
    for name in BASE_FILES:
        shutil.copy(base / name, out / name)
    weights = load_file(base / "model.safetensors")
    save_file({k: v.half() for k, v in weights.items()}, out / "model16.safetensors")


if __name__ == "__main__":
    main()

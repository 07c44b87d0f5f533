"""Step 3, back here: a reader from weights ``run.py`` returned, exported as ``qa train-reader`` does.

    .venv/bin/python bench/gpu_training/export.py FILES TAG OUT --epochs 2 [--trap-epochs 0.1]
        [--data ../shared/data/squad1.1-train.json]

FILES holds TAG0/TAG1.safetensors (every trained weight, fp16). The frozen word-piece
table and the pooler come from the bundled model; then ``qa.training.train.export`` writes
OUT/reader (int8 ONNX, tokenizer, reader.json with the calibration on the held-out
articles and the validation figures), as at the end of a ``qa train-reader`` run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors.torch import load_file

from qa.index.embedding import default_model_path
from qa.readers.windows import load_tokenizer
from qa.training import train as T
from qa.training.examples import load_articles, split_articles, validation_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path)
    parser.add_argument("tag")
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=float, required=True)
    parser.add_argument("--trap-epochs", type=float, default=0.0)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/squad1.1-train.json"))
    args = parser.parse_args()
    settings = T.Settings(epochs=args.epochs, trap_epochs=args.trap_epochs)
    base = default_model_path()
    model = T.build_model(base)
    state = model.state_dict()
    returned = {}
    for part in sorted(args.files.glob(f"{args.tag}[01].safetensors")):
        returned.update({k: v.float() for k, v in load_file(str(part)).items()})
    missing = [k for k in state if k not in returned and "word_embeddings" not in k and "pooler" not in k]
    unknown = [k for k in returned if k not in state]
    if missing or unknown:
        raise SystemExit(f"not this model's weights: missing {missing[:5]}, unknown {unknown[:5]}")
    state.update(returned)
    model.load_state_dict(state)
    model.eval()
    _, val_articles = split_articles(load_articles(args.data), settings.held_out_articles, settings.seed)
    val = validation_examples(val_articles, settings.seed, reword=settings.trap_epochs > 0)
    args.out.mkdir(parents=True, exist_ok=True)
    T.export(model, load_tokenizer(base), base, val_articles, val, args.out, settings, print)


if __name__ == "__main__":
    main()

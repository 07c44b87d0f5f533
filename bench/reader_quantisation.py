"""What int8 costs the span reader: its fp32 export against both ways of quantising it.

    .venv/bin/python bench/reader_quantisation.py OUT [--data ../shared/data/squad1.1-train.json]

OUT is a ``qa train-reader --out`` folder (it keeps ``reader-fp32.onnx`` beside the
exported ``reader/``). The fp32 file is quantised again, with one scale per weight
matrix and with one per output column (what ``qa train-reader`` ships), and each file
reads the held-out articles' windows and gold paragraphs exactly as export scores them.
Prints EM/F1, how often the answerable head is right, size, and one window's time on
one core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.index.embedding import default_model_path
from qa.readers.span import OnnxReaderModel
from qa.readers.windows import encode, load_tokenizer
from qa.training.examples import load_articles, split_articles, validation_examples
from qa.training.train import paragraph_scores, predict_windows, window_scores
from qa.training.weights import quantize


def window_ms(model: OnnxReaderModel, tokenizer, question: str, text: str, rounds: int = 50) -> float:
    inputs = encode(tokenizer, [(question, text)]).inputs
    model.run(inputs)
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.run(inputs)
        took.append(time.perf_counter() - start)
    return float(np.median(took) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/squad1.1-train.json"))
    args = parser.parse_args()
    trained = json.loads((args.out / "reader" / "reader.json").read_text(encoding="utf-8"))["trained"]
    _, articles = split_articles(load_articles(args.data), len(trained["held_out_articles"]),
                                 trained["seed"])
    examples = validation_examples(articles, trained["seed"], reword=trained.get("trap_epochs", 0) > 0)
    tokenizer = load_tokenizer(default_model_path())
    sample = next(e for e in examples if e.answer)
    with tempfile.TemporaryDirectory(prefix="qa-quant-") as tmp:
        files = {"fp32": args.out / "reader-fp32.onnx",
                 "int8, one scale per matrix": Path(tmp) / "matrix.onnx",
                 "int8, one scale per column, 7-bit (shipped)": Path(tmp) / "column.onnx"}
        quantize(files["fp32"], files["int8, one scale per matrix"], per_column=False)
        quantize(files["fp32"], files["int8, one scale per column, 7-bit (shipped)"])
        print(f"{len(examples)} held-out windows, {sum(len(a.questions) for a in articles)} questions "
              f"of {len(articles)} articles")
        print("| file | window EM / F1 | answerable head right | gold paragraph EM / F1 | MB | ms a window |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, path in files.items():
            model = OnnxReaderModel(path, threads=1)
            windows = window_scores(examples, predict_windows(model.run, tokenizer, examples))
            paragraphs = paragraph_scores(model.run, tokenizer, articles)
            print(f"| {name} | {windows['em']:.3f} / {windows['f1']:.3f} | "
                  f"{windows['answerable_accuracy']:.3f} | {paragraphs['em']:.3f} / {paragraphs['f1']:.3f} | "
                  f"{path.stat().st_size / 1e6:.0f} | "
                  f"{window_ms(model, tokenizer, sample.question, sample.window.text):.1f} |", flush=True)


if __name__ == "__main__":
    main()

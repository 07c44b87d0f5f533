"""Step 2, on the GPU machine: ``qa train-reader``'s own ``train()`` on the pre-built examples.

    OUT=DIR LIMIT=575 python3 bench/gpu_training/run.py WORK

A short probe of the step time picks the most epochs (3, 2.5, 2, ...) that fit the call's
LIMIT seconds, with a second phase of reworded questions (``--trap-epochs 0.25``) after
the first. Only the weights come back (a call returns at most 8 files, 64 MiB): in fp16,
less the frozen word-piece table and the unused pooler, at three points: A, the end of
the first phase (``--epochs E``); C, 0.1 epoch of the second (``--trap-epochs 0.1``, the
same steps as a run asked for 0.1); B, its end (``--trap-epochs 0.25``). ``export.py``
turns each into a reader exactly as ``qa train-reader`` does.
"""

from __future__ import annotations

import gzip
import json
import lzma
import math
import os
import pickle
import shutil
import sys
import time
import types
from pathlib import Path

T0 = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
OUT = Path(os.environ.get("OUT") or "/tmp/gpuout")
LIMIT = float(os.environ.get("LIMIT", "575"))
QUICK = bool(os.environ.get("QUICK"))  # a smoke run on a few examples, on any machine
BATCH, TRAP, MID = 32, 0.25, 0.1
MENU = (3.0, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8)


def log(*parts: object) -> None:
    print(f"[{time.time() - T0:6.1f}s]", *parts, flush=True)


def _absent(*args: object, **kwargs: object) -> None:
    raise RuntimeError("not available on the GPU machine")


# Training never touches the index or the sentence splitter; our two modules that import
# their libraries get stand-ins (no third-party name is faked: transformers looks for some).
for module, names in (("qa.index.store", ("tokenize",)), ("qa.index.chunking", ("Span", "split_sentences"))):
    stand_in = types.ModuleType(module)
    for name in names:
        setattr(stand_in, name, _absent)
    sys.modules[module] = stand_in

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from qa.training import train as T  # noqa: E402


def prepare(work: Path) -> tuple[Path, dict]:
    """The base model in fp32 again, and the examples."""
    base = Path("/tmp/base-minilm")
    base.mkdir(exist_ok=True)
    for f in (work / "base").iterdir():
        if f.name != "model16.safetensors":
            shutil.copy(f, base / f.name)
    weights = load_file(str(work / "base" / "model16.safetensors"))
    save_file({k: v.float().contiguous() for k, v in weights.items()}, str(base / "model.safetensors"),
              metadata={"format": "pt"})
    data = pickle.loads(lzma.decompress((work / "data.pkl.xz").read_bytes()))
    if QUICK:
        data = {k: v[:96] for k, v in data.items()}
    return base, data


def step_seconds(base: Path, examples: list) -> float:
    """The median time of a training step here, on a throwaway model."""
    tokenizer = T.load_tokenizer(str(base))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = T.build_model(str(base)).to(device)
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    examples = T.clipped(tokenizer, examples[: BATCH * 40])
    times = []
    for i in range(3 if QUICK else 40):
        started = time.time()
        with T.autocast(device, "bf16"):
            loss = T.loss_of(model, tokenizer, examples[i * BATCH % len(examples):][:BATCH], device)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        times.append(time.time() - started)
    return float(np.median(times[10:] or times))


def main() -> None:
    work = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    log("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    base, data = prepare(work)
    log("examples", {k: len(v) for k, v in data.items()})
    T.load_articles = lambda path: []
    T.split_articles = lambda articles, n, seed: ([], [])
    T.training_examples = lambda articles, seed, reword=False: data["p1" if reword else "p0"]
    T.validation_examples = lambda articles, seed, reword=False: data["val_reword" if reword else "val"]
    T.export = lambda *args, **kwargs: None  # exported on the CPU machine, by export.py

    def steps(epochs: float, n: int) -> int:
        return math.ceil(epochs * n / BATCH)

    step = step_seconds(base, data["p0"])
    left = LIMIT - (time.time() - T0) - 75
    n0, n1 = len(data["p0"]), len(data["p1"])
    menu = (0.5,) if QUICK else MENU
    epochs = next((e for e in menu if (steps(e, n0) + steps(TRAP, n1)) * step * 1.12 < left), menu[-1])
    first = steps(epochs, n0)
    marks = {first: "A", first + steps(MID, n1): "C", first + steps(TRAP, n1): "B"}
    log("plan", json.dumps({"epochs": epochs, "trap_epochs": TRAP, "mid": MID, "step_ms": step * 1000,
                            "seconds_left": left, "marks": marks}))
    run = Path("/tmp/gpurun")
    shutil.rmtree(run, ignore_errors=True)

    def save(state: dict, path: Path) -> None:
        """At each mark, the weights that training changed, in fp16, in two files."""
        tag = marks.get(state["step"])
        if tag is None:
            return
        weights = {k: v.detach().half().cpu().contiguous() for k, v in state["model"].items()
                   if "word_embeddings" not in k and "pooler" not in k}
        parts, size = ({}, {}), [0, 0]
        for k in sorted(weights, key=lambda k: -weights[k].numel()):
            i = int(np.argmin(size))
            parts[i][k] = weights[k]
            size[i] += weights[k].numel()
        for i, part in enumerate(parts):
            save_file(part, str(OUT / f"{tag}{i}.safetensors"))
        (OUT / "train.log.gz").write_bytes(gzip.compress((run / T.LOG).read_bytes()))
        log("saved", tag, "at step", state["step"])

    settings = T.Settings(epochs=epochs, batch_size=BATCH, trap_epochs=TRAP,
                          eval_every=2 if QUICK else 500, checkpoint_every=first + steps(MID, n1))
    T.train(Path("prebuilt"), run, settings, base=str(base), say=log, checkpoint_hook=save)
    log("done")


if __name__ == "__main__":
    main()

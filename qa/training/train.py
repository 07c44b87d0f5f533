"""``qa train-reader``: fine-tune the span reader from all-MiniLM-L6-v2 on SQuAD.

A cross-encoder reads [CLS] question [SEP] window [SEP] and gives, per token,
start and end logits for the short answer and, from [CLS], whether the window
answers at all. It learns from answer windows, and from windows and swapped-name
questions that do not answer. ``--trap-epochs`` adds a second phase at a low learning rate, as readers are
often trained on SQuAD 1.1 and then on SQuAD 2.0, that adds questions reworded so the
window no longer answers them (negated, or a word turned into its opposite): SQuAD
2.0's traps. Runs are deterministic for a seed and resume from the last checkpoint in
``--out``. The result is exported to ONNX, int8-quantised, and
its confidence calibrated on whole articles held out from training; serving
(``qa.readers.span``) needs nothing else.

Training code only: nothing here is imported when answering questions.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import QAError
from ..index.embedding import default_model_path
from ..readers.windows import (
    Batch,
    best_span,
    clip_question,
    encode,
    load_tokenizer,
    make_window,
    window_around,
)
from .examples import (
    Article,
    Example,
    load_articles,
    split_articles,
    training_examples,
    validation_examples,
)
from .metrics import exact_match, f1
from .weights import quantize, reader_weights

CHECKPOINT = "checkpoint.pt"
LOG = "train.log"


@dataclass
class Settings:
    epochs: float = 0.8
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup: float = 0.06
    seed: int = 13
    held_out_articles: int = 8
    limit_questions: int | None = None  # train on the first N questions only (smoke runs)
    # The optional second phase: passes over the examples with reworded questions, at a constant
    # low rate. 0.07 after the first phase: SQuAD 2.0 dev abstains on 0.231 of unanswerable
    # questions, not 0.145, at 0.90 answered, but F1 0.659, not 0.673 (docs/quality.md).
    trap_epochs: float = 0.0
    trap_learning_rate: float = 2e-5
    init: str | None = None  # a trained reader's folder to start from, not the base encoder
    also: str | None = None  # a second SQuAD file whose first ``also_articles`` articles are
    also_articles: int = 0  # trained on too (never held out): what the reader should keep
    eval_every: int = 250
    checkpoint_every: int = 200
    precision: str = "bf16"  # bf16 autocast, fp32 weights: 1.6 s a step against 2.5 s here (AVX512-BF16)


def autocast(device, precision: str):
    """The context a forward pass runs in: bf16 autocast, or plain fp32."""
    import torch

    usable = device.type == "cpu" or torch.cuda.is_bf16_supported()  # older GPUs: fp32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16" and usable)


def build_model(base: str):
    """The encoder from ``base`` with a span head on every token and an answerable head on [CLS]."""
    import torch
    from transformers import AutoModel

    class SpanModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(base, local_files_only=True)
            hidden = self.encoder.config.hidden_size
            self.span = torch.nn.Linear(hidden, 2)
            self.answerable = torch.nn.Linear(hidden, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            logits = self.span(states)
            return logits[..., 0], logits[..., 1], self.answerable(states[:, 0]).squeeze(-1)

    return SpanModel()


def answer_tokens(batch: Batch, row: int, answer: tuple[int, int]) -> tuple[int, int] | None:
    """First and last token of the answer's characters, or None if truncated away."""
    inside = np.flatnonzero(batch.in_window[row])
    offsets = batch.offsets[row]
    starts = [t for t in inside if offsets[t, 1] > answer[0]]
    ends = [t for t in inside if offsets[t, 0] < answer[1]]
    if not starts or not ends or starts[0] > ends[-1]:
        return None
    return starts[0], ends[-1]


def batch_plan(lengths: list[int], epochs: float, batch_size: int, seed: int) -> list[list[int]]:
    """Every step's example ids: shuffled by the seed, similar lengths batched together
    (less padding), for as many steps as the epochs ask."""
    rng = random.Random(seed)
    steps = math.ceil(epochs * len(lengths) / batch_size)
    plan: list[list[int]] = []
    while len(plan) < steps:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        pool = batch_size * 50
        batches = []
        for i in range(0, len(order), pool):
            block = sorted(order[i : i + pool], key=lambda k: lengths[k])
            batches += [block[j : j + batch_size] for j in range(0, len(block), batch_size)]
        rng.shuffle(batches)
        plan += batches
    return plan[:steps]


def _lengths(examples: list[Example]) -> list[int]:
    return [len(e.question) + len(e.window.text) for e in examples]


def clipped(tokenizer, examples: list[Example]) -> list[Example]:
    """The examples with their questions cut to what the reader reads."""
    return [Example(clip_question(tokenizer, e.question), e.window, e.answer, e.answers) for e in examples]


def tensors(tokenizer, examples: list[Example], device) -> tuple[dict, object, object, object]:
    """Model inputs and targets for a batch of examples."""
    import torch

    batch = encode(tokenizer, [(e.question, e.window.text) for e in examples])
    starts, ends = [], []
    for row, e in enumerate(examples):
        span = answer_tokens(batch, row, e.answer) if e.answer else None
        starts.append(span[0] if span else -100)
        ends.append(span[1] if span else -100)
    inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.inputs.items()}
    answerable = torch.tensor([s >= 0 for s in starts], dtype=torch.float32, device=device)
    window = torch.from_numpy(batch.in_window).to(device)
    targets = (torch.tensor(starts, device=device), torch.tensor(ends, device=device))
    return inputs, window, targets, answerable


def loss_of(model, tokenizer, examples: list[Example], device):
    import torch
    import torch.nn.functional as F

    inputs, window, (starts, ends), answerable = tensors(tokenizer, examples, device)
    start_logits, end_logits, answer_logit = model(**inputs)
    start_logits = start_logits.masked_fill(~window, -1e4)
    end_logits = end_logits.masked_fill(~window, -1e4)
    loss = F.binary_cross_entropy_with_logits(answer_logit, answerable)
    if bool((starts >= 0).any()):
        loss = loss + (F.cross_entropy(start_logits, starts, ignore_index=-100)
                       + F.cross_entropy(end_logits, ends, ignore_index=-100)) / 2
    return loss if torch.isfinite(loss) else loss * 0


Predict = Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray]]


def predict_windows(predict: Predict, tokenizer, examples: list[Example],
                    batch_size: int = 64) -> list[tuple[float, str, float]]:
    """(answerable logit, short answer, span log-probability) for each example."""
    out = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        batch = encode(tokenizer, [(clip_question(tokenizer, e.question), e.window.text) for e in chunk])
        start, end, answerable = predict(batch.inputs)
        for row, e in enumerate(chunk):
            span = best_span(start[row], end[row], batch.offsets[row], batch.in_window[row],
                             e.window.sentences)
            text = e.window.text[span.start : span.end] if span else ""
            out.append((float(answerable[row]), text, span.log_prob if span else -1e9))
    return out


def window_scores(examples: list[Example], predictions: list[tuple[float, str, float]]) -> dict:
    """EM/F1 on the answer windows and answerability accuracy on all."""
    pos = [(e, p) for e, p in zip(examples, predictions) if e.answer]
    right = [(p[0] > 0) == bool(e.answer) for e, p in zip(examples, predictions)]
    return {
        "em": round(float(np.mean([exact_match(p[1], e.answers) for e, p in pos])), 4) if pos else 0.0,
        "f1": round(float(np.mean([f1(p[1], e.answers) for e, p in pos])), 4) if pos else 0.0,
        "answerable_accuracy": round(float(np.mean(right)), 4) if right else 0.0,
    }


def torch_predictor(model, device) -> Predict:
    import torch

    def run(inputs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v).to(device) for k, v in inputs.items()})
        return tuple(o.float().cpu().numpy() for o in out)

    return run


def save_checkpoint(state: dict, path: Path) -> None:
    """Write a training state, atomically: a crash leaves the previous checkpoint whole."""
    import torch

    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    os.replace(partial, path)


def _log(out: Path, record: dict) -> None:
    with open(out / LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def train(dataset: Path, out: Path, settings: Settings, base: str | None = None,
          say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
          checkpoint_hook: Callable[[dict, Path], None] = save_checkpoint) -> Path:
    """Train (or resume) and export; returns the folder of the exported reader.

    ``checkpoint_hook(state, path)`` is called at every checkpoint (by default it writes
    the state, from which a later run resumes); a caller may keep what it needs instead."""
    import torch
    from tqdm import tqdm

    base = base or default_model_path()
    out.mkdir(parents=True, exist_ok=True)
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)

    articles = load_articles(dataset)
    train_articles, val_articles = split_articles(articles, settings.held_out_articles, settings.seed)
    if settings.limit_questions is not None:
        kept = settings.limit_questions
        for a in train_articles:
            a.questions, kept = a.questions[: max(kept, 0)], kept - len(a.questions)
        for a in val_articles:
            a.questions = a.questions[: max(settings.limit_questions // 4, 2)]
    if settings.also:
        train_articles += load_articles(Path(settings.also))[: settings.also_articles]
    tokenizer = load_tokenizer(base)
    phases = [clipped(tokenizer, training_examples(train_articles, settings.seed))]
    plans = [batch_plan(_lengths(phases[0]), settings.epochs, settings.batch_size, settings.seed)]
    then = ""
    if settings.trap_epochs:
        phases.append(clipped(tokenizer, training_examples(train_articles, settings.seed + 1, reword=True)))
        plans.append(batch_plan(_lengths(phases[1]), settings.trap_epochs, settings.batch_size,
                                settings.seed + 1))
        then = f"; then {len(plans[1])} steps over {len(phases[1])} with reworded questions"
    total = sum(len(plan) for plan in plans)
    val = validation_examples(val_articles, settings.seed, reword=settings.trap_epochs > 0)
    monitor = val[:600]
    say(f"{len(phases[0])} training examples ({sum(e.answer is None for e in phases[0])} without an answer), "
        f"{len(plans[0])} steps of {settings.batch_size}{then}; {len(val)} validation examples from "
        f"{len(val_articles)} held-out articles; on {device}, {settings.precision}")

    model = build_model(base)
    if settings.init:
        model.load_state_dict(reader_weights(Path(settings.init), model.state_dict()))
        say(f"starting from the reader in {settings.init}")
    model = model.to(device)
    # The word-piece table (half the weights) stays as pre-trained: a dense update of it
    # every step would cost more than the rest of the step on a CPU.
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]

    def optimizer_for(phase: int):
        """The first phase warms up and decays; the second runs at a constant low rate."""
        if phase == 0:
            optimizer = torch.optim.AdamW(trained, lr=settings.learning_rate, weight_decay=0.01)
            steps, warmup = len(plans[0]), max(1, int(settings.warmup * len(plans[0])))
            return optimizer, torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
        optimizer = torch.optim.AdamW(trained, lr=settings.trap_learning_rate, weight_decay=0.01)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)

    step, phase = 0, 0
    optimizer, schedule = optimizer_for(0)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if (state["plan_steps"] != len(plans[0]) or state["seed"] != settings.seed
                or state.get("precision", "fp32") != settings.precision):
            raise QAError(f"{checkpoint} is from another run (other data or settings); "
                          "use another --out or delete it")
        model.load_state_dict(state["model"])
        phase = state.get("phase", 0)
        optimizer, schedule = optimizer_for(phase)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        say(f"resuming from step {step} of {total}")

    def save() -> None:
        checkpoint_hook({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "schedule": schedule.state_dict(), "torch_rng": torch.get_rng_state(),
               "step": step, "phase": phase, "plan_steps": len(plans[0]), "seed": settings.seed,
               "precision": settings.precision}, checkpoint)

    model.train()
    started = time.time()
    with tqdm(total=total, initial=step, desc="training", unit="step", file=sys.stderr) as bar:
        while step < total:
            if phase == 0 and step == len(plans[0]):  # on to the reworded questions
                phase = 1
                optimizer, schedule = optimizer_for(1)
                torch.manual_seed(settings.seed + 1)
            examples, plan = phases[phase], plans[phase]
            batch = plan[step - len(plans[0]) * phase]
            with autocast(device, settings.precision):
                loss = loss_of(model, tokenizer, [examples[i] for i in batch], device)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            record = {"step": step, "loss": round(loss.item(), 4), "lr": schedule.get_last_lr()[0],
                      "seconds": round(time.time() - started, 1)}
            if step % settings.eval_every == 0 or step == total:
                model.eval()
                record.update(window_scores(monitor, predict_windows(torch_predictor(model, device),
                                                                     tokenizer, monitor)))
                model.train()
                bar.write(f"step {step}: validation EM {record['em']:.3f} F1 {record['f1']:.3f} "
                          f"answerable accuracy {record['answerable_accuracy']:.3f}")
            _log(out, record)
            if step % settings.checkpoint_every == 0 or step in (len(plans[0]), total):
                save()
    model.eval().cpu()
    return export(model, tokenizer, base, val_articles, val, out, settings, say)


def export(model, tokenizer, base: str, val_articles: list[Article], val: list[Example], out: Path,
           settings: Settings, say: Callable[[str], None]) -> Path:
    """Write reader.onnx (int8), its tokenizer and reader.json with the calibration."""
    from ..readers.span import CONFIG, MODEL, OnnxReaderModel, fit_calibration

    export_dir = out / "reader"
    export_dir.mkdir(exist_ok=True)
    fp32 = out / "reader-fp32.onnx"
    _export_onnx(model, tokenizer, fp32)
    quantize(fp32, export_dir / MODEL)
    shutil.copy(Path(base) / "tokenizer.json", export_dir / "tokenizer.json")
    session = OnnxReaderModel(export_dir / MODEL)
    predictions = predict_windows(session.run, tokenizer, val)
    scores = window_scores(val, predictions)
    paragraph = paragraph_scores(session.run, tokenizer, val_articles)
    calibration = fit_calibration(
        np.array([[p[0], p[2]] for p in predictions]),
        np.array([bool(e.answer) and f1(p[1], e.answers) >= 0.5 for e, p in zip(val, predictions)]))
    config = {
        "calibration": calibration,
        "trained": {"base": "sentence-transformers/all-MiniLM-L6-v2", "seed": settings.seed,
                    "epochs": settings.epochs, "batch_size": settings.batch_size,
                    "learning_rate": settings.learning_rate, "precision": settings.precision,
                    "trap_epochs": settings.trap_epochs, "trap_learning_rate": settings.trap_learning_rate,
                    "init": settings.init, "also": settings.also, "also_articles": settings.also_articles,
                    "held_out_articles": [a.title for a in val_articles]},
        "validation_windows": scores,
        "validation_paragraphs": paragraph,
    }
    (export_dir / CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    say(f"validation, answer window: EM {scores['em']:.3f} F1 {scores['f1']:.3f}; "
        f"gold paragraph: EM {paragraph['em']:.3f} F1 {paragraph['f1']:.3f}")
    say(f"reader written to {export_dir}")
    return export_dir


def _export_onnx(model, tokenizer, path: Path) -> None:
    import warnings

    import torch

    batch = encode(tokenizer, [("Who led the delegation?", "Sonata Coulter led the U.S. delegation.")])
    # Attention written out as plain matrix products exports to a graph ONNX Runtime runs
    # faster than the fused kernel's traced one (11.8 ms against 12.7 ms a window here), same logits.
    model.encoder.set_attn_implementation("eager")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "windows", 1: "tokens"} for n in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, tuple(torch.from_numpy(batch.inputs[n]) for n in names), str(path),
            input_names=names, output_names=["start_logits", "end_logits", "answerable_logit"],
            dynamic_axes={**axes, "start_logits": {0: "windows", 1: "tokens"},
                          "end_logits": {0: "windows", 1: "tokens"}, "answerable_logit": {0: "windows"}},
            opset_version=17, dynamo=False)


def paragraph_scores(predict: Predict, tokenizer, articles: list[Article]) -> dict:
    """Reading comprehension given the gold paragraph: every window of it is read and the
    one the model finds likeliest to answer gives the short answer."""
    ems, f1s = [], []
    for article in articles:
        for q in article.questions:
            if not q.answerable:
                continue
            para = article.paragraphs[q.paragraph]
            ranges = sorted({window_around(para.spans, c) for c in range(len(para.spans))})
            windows = [make_window(para.text, para.spans, lo, hi) for lo, hi in ranges]
            examples = [Example(q.text, w, None, q.answers) for w in windows]
            predictions = predict_windows(predict, tokenizer, examples)
            best = max(predictions, key=lambda p: (p[0], p[2]))
            ems.append(exact_match(best[1], q.answers))
            f1s.append(f1(best[1], q.answers))
    return {"questions": len(ems), "em": round(float(np.mean(ems)), 4) if ems else 0.0,
            "f1": round(float(np.mean(f1s)), 4) if f1s else 0.0}

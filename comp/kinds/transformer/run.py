"""A transformer run: the process group and device, the tokenizer and every row's token ids,
set up once and shared by the folds it trains."""

from __future__ import annotations

import gc
from pathlib import Path

import torch
from rich.console import Console

from comp.events import Events
from comp.kinds import FoldFit, RunInputs
from comp.kinds.transformer.loop import EncodedRun, FoldTrainer
from comp.neural.backbone import load_tokenizer, tokenizer_options
from comp.neural.distributed import setup, teardown
from comp.neural.token_cache import encode_cached, tokenizer_fingerprint


def encode_run(inputs: RunInputs) -> EncodedRun:
    """Token ids of every train and test row, from the token cache when it has them."""
    model = inputs.config.model
    tokenizer = load_tokenizer(model.backbone, tokenizer_options(model))
    fingerprint = tokenizer_fingerprint(tokenizer)

    def encode(questions, answers):
        return encode_cached(
            tokenizer,
            questions,
            answers,
            model.max_len,
            model.answer_min_tokens,
            inputs.cache_dir,
            fingerprint,
        )

    train = encode(inputs.train.questions, inputs.train.answers)
    tests = [encode(t.questions, t.answers) for t in inputs.tests]
    return EncodedRun(inputs, tokenizer, train, tests)


class TransformerRun:
    def __init__(self, inputs: RunInputs, device_name: str, console: Console) -> None:
        self.dist, self.device = setup(device_name)
        self.console = console if self.dist.main else Console(quiet=True)
        self.data = encode_run(inputs)

    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit | None:
        trainer = FoldTrainer(self.data, fold, out, self.device, self.console, self.dist, events)
        try:
            return trainer.run()
        finally:
            del trainer
            gc.collect()  # the fold's model and optimizer are garbage now: free their memory
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def close(self) -> None:
        teardown(self.dist)


def start(inputs: RunInputs, device: str | None, console: Console) -> TransformerRun:
    return TransformerRun(inputs, device or inputs.config.train.device, console)

"""The masked-LM training loop of `comp pretrain`, resumably. Read it top to bottom:

- `Pretrainer.__init__` loads the backbone with a masked-LM head and builds AdamW (no weight
  decay on biases and LayerNorm) with warmup and linear decay;
- `start_or_resume` continues from the last readable checkpoint made with the same fingerprint;
- `train_step` masks a batch (`masking`), runs forward and backward (bf16 autocast on CUDA) and
  steps, skipping a step whose loss or gradient is not finite; too many in a row stop it;
- `run` loops to `pretrain.steps`, saving a checkpoint every `pretrain.checkpoint_every` steps
  and telling its `Events` (`comp.events`) how it goes every `train.log_every` steps.

The data order of an epoch and the masks of a step are pure functions of (seed, epoch) and
(seed, step), and the RNG states (dropout) are checkpointed: on a CPU a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

import comp.interrupt as interrupt
from comp.config import Config
from comp.errors import CompError
from comp.events import Events, ShowProgress, Start, Step
from comp.neural.backbone import load_masked_lm
from comp.neural.batches import collate
from comp.neural.checkpoints import (
    read_newest_state,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from comp.neural.encoding import length_bucketed_batches
from comp.neural.files import CHECKPOINT, PREVIOUS_CHECKPOINT
from comp.neural.inference import autocast
from comp.neural.optim import linear_warmup_decay, llrd_param_groups
from comp.neural.token_cache import EncodedTexts
from comp.pretrain.masking import IGNORE, mask_spec, mask_tokens
from comp.progress import StepProgress

ORDER_STREAM, MASK_STREAM = 1, 2  # keep the data order and the masks independent streams
STATE_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "history", "window", "counts")
HISTORY_POINTS = 20  # mean losses recorded over a run


class PretrainDivergedError(CompError):
    """Pretraining produced non-finite numbers; nothing is written, the checkpoint is kept."""


def prediction_head(model):
    """The module that turns hidden states into vocabulary logits (BERT's `cls`, RoBERTa's
    `lm_head`), so that only the masked positions are scored; None: the model scores all."""
    return getattr(model, "cls", None) or getattr(model, "lm_head", None)


def masked_lm_loss(model, head, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the predicted tokens, computed in fp32. With a known head only
    the predicted positions go through the vocabulary projection (100,000 columns for
    ARBERTv2: the full [B, T, V] logits would dwarf the rest of the step)."""
    picked = labels != IGNORE
    if head is None:
        logits = model(**inputs).logits[picked]
    else:
        logits = head(model.base_model(**inputs).last_hidden_state[picked])
    return F.cross_entropy(logits.float(), labels[picked])


def start_from_unigram(model, encoded: EncodedTexts, tokenizer) -> None:
    """Set a new head's vocabulary bias to the text's log unigram frequencies (add-one). Left
    at zero, the first hundreds of steps only learn those frequencies, and meanwhile the encoder
    is pushed to give every position the same vector: fine-tuned from there, a small model did
    worse than from random weights."""
    bias = getattr(model.get_output_embeddings(), "bias", None)
    if bias is None:
        return
    counts = np.bincount(encoded.ids, minlength=bias.numel())[: bias.numel()].astype(np.float64)
    counts[[i for i in tokenizer.all_special_ids if i < len(counts)]] = 0
    with torch.no_grad():
        bias.copy_(torch.from_numpy(np.log((counts + 1) / (counts.sum() + len(counts)))))


class Pretrainer:
    def __init__(
        self,
        config: Config,
        source: str,
        tokenizer,
        encoded: EncodedTexts,
        work: Path,
        fingerprint: str,
        device: torch.device,
        console: Console,
        events: Events | None = None,
    ) -> None:
        self.config, self.cfg, self.encoded = config, config.pretrain, encoded
        self.events = events if events is not None else Events()
        self.work, self.fingerprint, self.device, self.console = work, fingerprint, device, console
        cfg = self.cfg
        seed_everything(cfg.seed)  # the masked-LM head a backbone lacks is initialised from it
        self.model, new_head = load_masked_lm(source)
        if new_head:
            start_from_unigram(self.model, encoded, tokenizer)
        self.model.to(device)
        self.head = prediction_head(self.model)
        groups = llrd_param_groups(self.model, cfg.lr, 1.0, cfg.weight_decay)  # no decay: one lr
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=device.type == "cuda")
        self.scheduler = linear_warmup_decay(self.optimizer, cfg.steps, cfg.warmup_ratio)
        self.spec = mask_spec(tokenizer, cfg.mask_rate, cfg.whole_word)
        self.pad_id = tokenizer.pad_token_id
        self.batches_per_epoch = len(self.epoch_order(0))
        self.log_every = max(1, cfg.steps // HISTORY_POINTS)
        self.step, self.history, self.window = 0, [], [0.0, 0]
        self.counts = {"samples": 0, "tokens": 0, "maskable": 0, "predicted": 0, "skipped": 0}
        self.counts["seconds"] = 0.0
        self.nonfinite_in_a_row = 0
        self.grad_norm = 0.0

    def epoch_order(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.cfg.seed, ORDER_STREAM, epoch])
        return length_bucketed_batches(self.encoded.lengths, self.cfg.batch_size, rng)

    # -----------------------------------------------------------------------------------------
    # Start or resume

    def start_or_resume(self) -> bool:
        """Continue from the newest readable checkpoint of this fingerprint (True), else start
        clean (False)."""
        newest, previous = self.work / CHECKPOINT, self.work / PREVIOUS_CHECKPOINT
        state, problems = read_newest_state(
            newest, previous, (*STATE_KEYS, "fingerprint"), self.device
        )
        for problem in problems:
            self.console.print(f"pretrain: {problem}")
        if state is not None and state["fingerprint"] != self.fingerprint:
            self.console.print("pretrain: the checkpoint was made with other settings; restarting")
            state = None
        if state is None:
            newest.unlink(missing_ok=True)
            previous.unlink(missing_ok=True)
            self.events.emit(Start(0, self.cfg.steps))
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step, self.history = state["step"], state["history"]
        self.window, self.counts = state["window"], {**self.counts, **state["counts"]}
        self.console.print(f"pretrain: resuming from step {self.step}")
        self.events.emit(Start(self.step, self.cfg.steps))
        return True

    def save(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "history": self.history,
            "window": self.window,
            "counts": self.counts,
            "fingerprint": self.fingerprint,
        }
        save_checkpoint(state, self.work / CHECKPOINT, self.work / PREVIOUS_CHECKPOINT)

    # -----------------------------------------------------------------------------------------
    # One step

    def masked_batch(self, rows: list[int]) -> tuple[dict, torch.Tensor]:
        """The model inputs of `rows`, padded as training pads them, with this step's masks."""
        cpu = torch.device("cpu")
        multiple, limit = self.config.train.pad_multiple, self.config.model.max_len
        inputs = collate(self.encoded, rows, self.pad_id, cpu, multiple, limit)
        rng = np.random.default_rng([self.cfg.seed, MASK_STREAM, self.step])
        ids, attention = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
        masked, labels = mask_tokens(ids, attention, self.spec, rng)
        self.counts["maskable"] += int(((attention == 1) & ~self.spec.special[ids]).sum())
        self.counts["tokens"] += int(attention.sum())
        self.counts["predicted"] += int((labels != IGNORE).sum())
        inputs["input_ids"] = torch.from_numpy(masked)
        moved = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
        return moved, torch.from_numpy(labels).to(self.device)

    def train_step(self, rows: list[int]) -> float:
        """One optimiser step; a non-finite loss or gradient norm skips the update (counted),
        `train.max_nonfinite_steps` of them in a row stop pretraining."""
        inputs, labels = self.masked_batch(rows)
        with autocast(self.device, self.config.train.precision):
            loss = masked_lm_loss(self.model, self.head, inputs, labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        value, norm_value = torch.stack([loss.detach(), norm.float()]).tolist()
        self.grad_norm = norm_value
        finite = math.isfinite(value) and math.isfinite(norm_value)
        if finite:
            self.optimizer.step()
            self.nonfinite_in_a_row = 0
        else:
            self.counts["skipped"] += 1
            self.nonfinite_in_a_row += 1
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.counts["samples"] += len(rows)
        if self.nonfinite_in_a_row >= self.config.train.max_nonfinite_steps:
            self._diverged()
        return value

    def _stop_at(self, signum: int) -> None:
        self.save()
        raise interrupt.Interrupted(
            signum,
            f"pretraining stopped by {signal.Signals(signum).name} at step {self.step}; its "
            f"checkpoint is saved and the same command resumes from step {self.step}",
        )

    def _diverged(self) -> None:
        kept = self.work / CHECKPOINT
        where = f"its last checkpoint ({kept}) is kept" if kept.is_file() else "no checkpoint"
        lr = self.scheduler.get_last_lr()[0]
        raise PretrainDivergedError(
            f"pretraining diverged at step {self.step} (lr {lr:.2e}): {self.nonfinite_in_a_row} "
            f"steps in a row had a non-finite loss or gradient; nothing written, {where}. Try "
            "a lower pretrain.lr"
        )

    def _log(self, loss: float) -> None:
        if math.isfinite(loss):
            self.window = [self.window[0] + loss, self.window[1] + 1]
        if self.step % self.log_every == 0 or self.step == self.cfg.steps:
            total, n = self.window
            self.history.append({"step": self.step, "loss": total / n if n else None})
            self.window = [0.0, 0]

    # -----------------------------------------------------------------------------------------
    # The whole run

    def _step_event(self, loss: float) -> Step:
        seconds = max(self.counts["seconds"], 1e-9)
        return Step(
            step=self.step,
            total=self.cfg.steps,
            loss=loss,
            lr=float(self.scheduler.get_last_lr()[0]),
            grad_norm=self.grad_norm,
            skipped_steps=self.counts["skipped"],
            samples_per_s=self.counts["samples"] / seconds,
            tokens_per_s=self.counts["tokens"] / seconds,
        )

    def run(self) -> dict:
        """Pretrain to `pretrain.steps`; returns what the output's metrics record."""
        cfg = self.cfg
        self.start_or_resume()
        self.model.train()
        order: list[list[int]] = []
        progress = StepProgress(self.console, "pretrain", cfg.steps, self.step)
        with interrupt.at_step_boundaries(), progress:
            self.events.subscribe(ShowProgress(progress))
            while self.step < cfg.steps:
                tick = time.perf_counter()
                epoch, position = divmod(self.step, self.batches_per_epoch)
                if position == 0 or not order:
                    order = self.epoch_order(epoch)
                loss = self.train_step(order[position])
                self.counts["seconds"] += time.perf_counter() - tick
                self._log(loss)
                if self.step % self.config.train.log_every == 0 or self.step == cfg.steps:
                    self.events.emit(self._step_event(loss))
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.save()
                if (signum := interrupt.requested()) is not None and self.step < cfg.steps:
                    self._stop_at(signum)
        counts = self.counts
        return {
            "steps": self.step,
            "history": self.history,
            "skipped_steps": counts["skipped"],
            "predicted_share": counts["predicted"] / max(counts["maskable"], 1),
            "train_s": counts["seconds"],  # the loop's own time, over every resumed attempt
            "samples_per_s": counts["samples"] / max(counts["seconds"], 1e-9),
            "device": str(self.device),
        }

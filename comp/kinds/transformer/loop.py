"""One fold of the seed paper's recipe, resumably. Read it top to bottom:

- `FoldTrainer.__init__` builds what a fold needs: the LDAM margins and DRW weights from the
  fold's training counts, the classifier, LLRD AdamW with warmup and linear decay, FGM;
- `start_or_resume` continues from the fold's last readable checkpoint when it was made from the
  same data, folds and fingerprint, else starts clean;
- `train_step` runs one optimiser step through `self.stepper`: the sync-free step (`step.py`,
  the default; CUDA graphs in `graphs.py`) or the eager one (`eager_step.py`), each handed a
  `StepContext`: micro-batches (CE then LDAM/DRW, normalised by the whole batch; FGM on the word
  embeddings), clipping and the update, skipped when the loss or the gradient is not finite;
  `read_progress` brings the loss, the gradient norm and the non-finite counts to the host every
  `log_every` steps, and the trainer tells its `Events` (`comp.events`) as a `Step`;
- `evaluate_and_checkpoint` scores the validation rows every `eval_every` steps (an
  `Evaluation`), keeps the best model, stops the fold when a listener asked it to
  (`FoldStopped`), and saves a checkpoint every `checkpoint_every` steps;
- `run` loops to `train.steps` and returns the best model's validation and test logits; too many
  non-finite steps in a row, or non-finite validation logits, stop it with `DivergedError`.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
from rich.console import Console

import comp.interrupt as interrupt
from comp.errors import CompError
from comp.events import Evaluation, Events, FoldStopped, History, ShowProgress, Start, Step
from comp.kinds import FoldFit, MadeWith, RunInputs
from comp.kinds.transformer.context import StepContext
from comp.kinds.transformer.eager_step import EagerStep
from comp.kinds.transformer.graphs import StepGraphs, graphs_wanted
from comp.kinds.transformer.losses import drw_class_weights, ldam_margins
from comp.kinds.transformer.model import build_classifier
from comp.kinds.transformer.step import StepReading, SyncFreeStep
from comp.metrics import macro_f1
from comp.neural.batches import epoch_batches
from comp.neural.checkpoints import (
    UnreadableCheckpoint,
    read_newest_state,
    read_state,
    rng_state,
    save_checkpoint,
    save_torch,
    seed_everything,
    set_rng_state,
)
from comp.neural.distributed import SINGLE, Dist, peak_memory_mb, wrap
from comp.neural.files import BACKBONE, BEST_MODEL, CHECKPOINT, PREVIOUS_CHECKPOINT
from comp.neural.fold_encoder import read_best_model, save_backbone_files
from comp.neural.inference import Batching, predict_logits
from comp.neural.optim import linear_warmup_decay, llrd_param_groups
from comp.neural.token_cache import EncodedTexts
from comp.progress import StepProgress

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "step", "best", "history")


class DivergedError(CompError):
    """Training produced non-finite numbers; the fold stops, its last checkpoint is kept."""


@dataclass(frozen=True)
class EncodedRun:
    """A run's inputs with their token ids, computed once and shared by every fold."""

    inputs: RunInputs
    tokenizer: object
    train: EncodedTexts
    tests: list[EncodedTexts]


class FoldTrainer:
    """The state of one fold's training; under torchrun every rank holds one, and rank 0 alone
    evaluates and writes files."""

    def __init__(
        self,
        data: EncodedRun,
        fold: int,
        out: Path,
        device: torch.device,
        console: Console,
        dist: Dist = SINGLE,
        events: Events | None = None,
    ) -> None:
        config = data.inputs.config
        self.config, self.cfg, self.data = config, config.train, data
        self.fold, self.out, self.device, self.console, self.dist = fold, out, device, console, dist
        self.events = events if events is not None else Events()
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.labels = data.inputs.train.labels
        self.train_rows = data.inputs.train_rows(fold)
        self.val_rows = data.inputs.val_rows(fold)
        counts = np.bincount(self.labels[self.train_rows], minlength=config.data.num_labels)
        self.margins = ldam_margins(
            counts,
            C=cfg.ldam_c,
            max_m=cfg.ldam_max_m,
            boost_classes=cfg.boost_classes,
            boost_factor=cfg.boost_factor,
        ).to(device)
        weights = drw_class_weights(counts, beta=cfg.drw_beta)
        self.weights, self.row_weight = weights.to(device), weights.double().numpy()

        self.model = build_classifier(config, pretrained=True).to(device)
        self.net = wrap(self.model, dist, device)  # what the training passes go through
        if cfg.compile:  # lengths vary batch to batch: one graph with a symbolic length
            self.net = torch.compile(self.net, dynamic=True)
        self.optimizer = self._optimizer()
        self.scheduler = linear_warmup_decay(self.optimizer, cfg.steps, cfg.warmup_ratio)
        self.pad_id = data.tokenizer.pad_token_id
        self.lengths = data.train.lengths[self.train_rows]
        self.batches_per_epoch = len(epoch_batches(self.lengths, cfg.batch_size, cfg.seed, fold, 0))

        self.step, self.best = 0, {"score": -1.0, "step": 0}
        self.history = History()
        self.events.subscribe(lambda event: self.history(event))  # the one restored on resume
        self.samples = self.tokens = 0
        self.loop_time = 0.0
        self.skipped_steps = self.nonfinite_in_a_row = 0
        context = StepContext(
            config, data.train, self.labels, self.pad_id, self.model, self.net, self.optimizer,
            self.margins, self.weights, self.row_weight, device, dist,
        )  # fmt: skip
        self.stepper = SyncFreeStep(context) if cfg.step == "sync_free" else EagerStep(context)
        if cfg.step == "sync_free" and graphs_wanted(cfg.cuda_graphs, device, dist.world):
            self.stepper.graphs = StepGraphs(self.stepper)

    def _optimizer(self) -> torch.optim.AdamW:
        """LLRD AdamW. The sync-free step wants it fused (it skips a non-finite update itself),
        capturable on CUDA, and each group's lr in a device tensor the schedule writes."""
        cfg, device = self.cfg, self.device
        groups = llrd_param_groups(self.model, cfg.lr, cfg.llrd_decay, cfg.weight_decay)
        if cfg.step == "eager":
            return torch.optim.AdamW(groups, lr=cfg.lr, fused=device.type == "cuda")
        for group in groups:
            group["initial_lr"] = group["lr"]  # a float: the schedule then writes no host sync
            group["lr"] = torch.tensor(group["lr"], device=device)
        capturable = device.type == "cuda"
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True, capturable=capturable)

    def _lrs_on_device(self) -> None:
        """After loading an optimiser state, the lrs back in device tensors (sync-free step)."""
        if self.cfg.step == "eager":
            return
        for group in self.optimizer.param_groups:
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
            group["initial_lr"] = float(group["initial_lr"])

    # -----------------------------------------------------------------------------------------
    # Start or resume

    def _readable_checkpoint(self) -> dict | None:
        """The newest checkpoint that loads, each unreadable one reported in one line; an
        unreadable newest one is removed so that the next save keeps the good one as previous."""
        newest, previous = self.out / CHECKPOINT, self.out / PREVIOUS_CHECKPOINT
        keys = CHECKPOINT_KEYS + ("folds_sha256", "train_sha256")
        state, problems = read_newest_state(newest, previous, keys, self.device, self.dist.main)
        for problem in problems:
            self.console.print(f"fold {self.fold}: {problem}")
        if state is None and problems:
            self.console.print(f"fold {self.fold}: no readable checkpoint; restarting from scratch")
        return state

    def _restore_best(self) -> None:
        """The best score so far, from best_model.pt when it is newer than the checkpoint (a
        kill fell in between); an unreadable one is dropped: later evaluations make another."""
        best_path = self.out / BEST_MODEL
        if not best_path.is_file():
            return
        try:
            saved = read_state(best_path, ("model", "score", "step"), "cpu")
        except UnreadableCheckpoint as problem:
            self.console.print(f"fold {self.fold}: {problem}; the best model is chosen again")
            self.best = {"score": -1.0, "step": 0}
            if self.dist.main:
                best_path.unlink(missing_ok=True)
            return
        if saved["score"] > self.best["score"]:
            self.best = {"score": saved["score"], "step": saved["step"]}

    def start_or_resume(self) -> bool:
        """Load the fold's last readable checkpoint if it was made from the same data, folds and
        fingerprint (True), else start clean, removing what an earlier attempt left (False)."""
        self.dist.barrier()  # every rank decides from the same files
        state = self._readable_checkpoint()
        if state is not None and MadeWith.recorded(state) != self.data.inputs.made_with:
            self.console.print(
                f"fold {self.fold}: its checkpoint was made with other data, folds or training "
                "config; restarting"
            )
            state = None
        self.dist.barrier()
        if state is None:
            if self.dist.main:  # nothing of an earlier attempt may leak in
                for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, BEST_MODEL):
                    (self.out / name).unlink(missing_ok=True)
                save_backbone_files(self.model.backbone, self.data.tokenizer, self.out / BACKBONE)
            self.events.emit(Start(0, self.cfg.steps))
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._lrs_on_device()
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step, self.best, self.history = state["step"], state["best"], History(state["history"])
        self.nonfinite_in_a_row, self.skipped_steps = state.get("nonfinite", (0, 0))
        self.stepper.restore_counts(self.nonfinite_in_a_row, self.skipped_steps)
        if self.dist.main and not (self.out / BACKBONE / "config.json").is_file():
            save_backbone_files(self.model.backbone, self.data.tokenizer, self.out / BACKBONE)
        self._restore_best()
        self.console.print(f"fold {self.fold}: resuming from step {self.step}")
        self.events.emit(Start(self.step, self.cfg.steps))
        return True

    # -----------------------------------------------------------------------------------------
    # One optimiser step

    def train_step(self, batch: np.ndarray, epoch: int) -> None:
        """One optimiser step on `batch` (the whole batch; each rank trains on its share). A
        non-finite loss or gradient norm skips the update (counted); the step, the schedule
        and the data order move on as usual."""
        counts = self.stepper.run(batch, epoch)
        self.samples += counts.rows
        self.tokens += counts.tokens
        with warnings.catch_warnings():  # after a skipped first update torch warns wrongly
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.step += 1

    def read_progress(self) -> StepReading:
        """The last step's loss and gradient norm, read from the device with the non-finite
        counts; stops the fold when `max_nonfinite_steps` steps in a row were not finite."""
        reading = self.stepper.read()
        self.nonfinite_in_a_row, self.skipped_steps = (
            reading.nonfinite_in_a_row,
            reading.skipped_steps,
        )
        if self.nonfinite_in_a_row >= self.cfg.max_nonfinite_steps:
            in_a_row = self.nonfinite_in_a_row
            self._diverged(f"{in_a_row} steps in a row had a non-finite loss or gradient")
        return reading

    def _diverged(self, what: str) -> None:
        lr = self.scheduler.get_last_lr()[0]
        kept = self.out / CHECKPOINT
        checkpoint = f"its last checkpoint ({kept}) is kept" if kept.is_file() else "no checkpoint"
        bf16 = self.device.type == "cuda" and self.cfg.precision == "bf16"
        hint = "a lower train.lr" + (", or train.precision=fp32" if bf16 else "")
        raise DivergedError(
            f"fold {self.fold} diverged at step {self.step} (lr {lr:.2e}): {what}; nothing "
            f"written, {checkpoint}. Try {hint}"
        )

    # -----------------------------------------------------------------------------------------
    # Evaluate and checkpoint

    def validation_logits(self) -> np.ndarray:
        batching = Batching.of(self.config, self.pad_id, self.device)
        return predict_logits(self.model, self.data.train, self.val_rows, batching, self.cfg.ldam_s)

    def evaluate(self) -> float | None:
        """Validation macro-F1, or None when the validation logits are not all finite."""
        logits = self.validation_logits()
        self.model.train()
        if not np.isfinite(logits).all():
            return None
        y = self.labels[self.val_rows]
        return macro_f1(y, logits.argmax(1), self.config.data.num_labels)

    def _any_rank(self, *flags: bool) -> list[bool]:
        """Each flag, true if it is true on any rank (rank 0 decides what the others follow)."""
        if self.dist.world == 1:
            return list(flags)
        values = torch.tensor([float(flag) for flag in flags], device=self.device)
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def _checkpoint_state(self) -> dict:
        inputs = self.data.inputs
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "best": self.best,
            "history": self.history.as_dict(),
            "nonfinite": (self.nonfinite_in_a_row, self.skipped_steps),
            **inputs.made_with.record(),
        }

    def evaluate_and_checkpoint(self, epoch: int) -> None:
        """At the evaluation cadence (and the last step) score the validation rows, tell the
        events, keep the best model, and stop when a listener asked to; at the checkpoint
        cadence save everything a resume needs (rank 0)."""
        cfg, step = self.cfg, self.step
        evaluates = step % cfg.eval_every == 0 or step == cfg.steps
        if evaluates:
            self._evaluate(epoch)
        if step % cfg.checkpoint_every == 0 and step < cfg.steps and self.dist.main:
            state = self._checkpoint_state()
            save_checkpoint(state, self.out / CHECKPOINT, self.out / PREVIOUS_CHECKPOINT)
        if step % cfg.eval_every == 0 or step % cfg.checkpoint_every == 0:
            self.dist.barrier()  # the other ranks wait while rank 0 evaluates and saves

    def _evaluate(self, epoch: int) -> None:
        step = self.step
        score = self.evaluate() if self.dist.main else 0.0
        if self.dist.main and score is not None:
            self.events.emit(Evaluation(step, epoch, score))
        diverged, stopped = self._any_rank(score is None, self.events.stop_reason is not None)
        if diverged:  # rank 0 tells the others
            self._diverged("the validation logits are not finite")
        if stopped:
            reason = self.events.stop_reason or "stopped by rank 0"
            raise FoldStopped(reason, step, score if self.dist.main else None, self.fold)
        if self.dist.main and score > self.best["score"]:
            self.best = {"score": score, "step": step}
            save_torch({**self.best, "model": self.model.state_dict()}, self.out / BEST_MODEL)

    # -----------------------------------------------------------------------------------------
    # The whole fold

    def _reads_now(self) -> bool:
        """Whether this step ends with a host read: the logging cadence, and every step that
        evaluates, saves a checkpoint or ends the fold."""
        cfg, step = self.cfg, self.step
        cadences = (cfg.log_every, cfg.eval_every, cfg.checkpoint_every)
        return step == cfg.steps or any(step % every == 0 for every in cadences)

    def run(self) -> FoldFit | None:
        """Train to `train.steps`, then (rank 0) the best model's validation and test logits."""
        cfg = self.cfg
        self.start_or_resume()
        self.model.train()
        order: list[list[int]] = []
        mark = time.perf_counter()
        progress = StepProgress(self.console, f"fold {self.fold}", cfg.steps, self.step)
        with interrupt.at_step_boundaries(), progress:
            self.events.subscribe(ShowProgress(progress))
            while self.step < cfg.steps:
                epoch, position = divmod(self.step, self.batches_per_epoch)
                if position == 0 or not order:
                    order = epoch_batches(self.lengths, cfg.batch_size, cfg.seed, self.fold, epoch)
                self.train_step(self.train_rows[order[position]], epoch)
                if self._reads_now():
                    reading = self.read_progress()  # waits for the device: the time is real
                    self.loop_time += time.perf_counter() - mark
                    self.events.emit(self._step_event(reading))
                    self.evaluate_and_checkpoint(epoch)
                    mark = time.perf_counter()  # evaluating and saving are not training time
                # after the step's evaluation: a resumed run starts exactly where this one ends
                if (signum := self._stop_signal()) is not None and self.step < cfg.steps:
                    self._stop_at(signum)
        self.dist.barrier()
        if not self.dist.main:
            return None
        return self._best_model_fit()

    def _stop_signal(self) -> int | None:
        """The stop signal to act on after this step: checked every step in one process; under
        torchrun at the reading steps only, when any rank got one (a collective)."""
        signum = interrupt.requested()
        if self.dist.world == 1:
            return signum
        if not self._reads_now():
            return None
        (anywhere,) = self._any_rank(signum is not None)
        return (signum or signal.SIGTERM) if anywhere else None

    def _stop_at(self, signum: int) -> None:
        """Save a checkpoint at the step reached (rank 0) and end the fold with Interrupted."""
        self.read_progress()  # the device's non-finite counts, into the checkpoint
        if self.dist.main and self.step > 0:
            state = self._checkpoint_state()
            save_checkpoint(state, self.out / CHECKPOINT, self.out / PREVIOUS_CHECKPOINT)
        self.dist.barrier()
        name = signal.Signals(signum).name
        raise interrupt.Interrupted(
            signum,
            f"fold {self.fold} of {self.config.train.experiment}: stopped by {name} at step "
            f"{self.step}; its checkpoint is saved and the same command resumes from step "
            f"{self.step}",
        )

    def _step_event(self, reading: StepReading) -> Step:
        seconds = max(self.loop_time, 1e-9)
        return Step(
            step=self.step,
            total=self.cfg.steps,
            loss=reading.loss,
            lr=float(self.scheduler.get_last_lr()[0]),
            grad_norm=reading.grad_norm,
            skipped_steps=reading.skipped_steps,
            samples_per_s=self.samples / seconds,
            tokens_per_s=self.tokens / seconds,
        )

    def _graph_counts(self) -> dict | None:
        graphs = getattr(self.stepper, "graphs", None)
        if graphs is None:
            return None
        return {
            "captured": graphs.captures,
            "replays": graphs.replays,
            "failed": len(graphs.failed),
        }

    def _best_model_fit(self) -> FoldFit:
        self.model.load_state_dict(read_best_model(self.out, self.device))
        cfg = self.cfg
        batching = Batching.of(self.config, self.pad_id, self.device)
        test_logits = [
            predict_logits(self.model, encoded, np.arange(len(encoded)), batching, cfg.ldam_s)
            for encoded in self.data.tests
        ]
        seconds = max(self.loop_time, 1e-9)
        return FoldFit(
            self.validation_logits(),
            test_logits,
            samples_per_s=self.samples / seconds,
            tokens_per_s=self.tokens / seconds,
            best_step=self.best["step"],
            history=self.history.as_dict(),
            extra={
                "peak_memory_mb": peak_memory_mb(self.device),
                "device": str(self.device),
                "world_size": self.dist.world,  # processes (torchrun ranks) that trained it
                "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "skipped_steps": self.skipped_steps,  # non-finite loss or gradient
                "step_kind": cfg.step,
                "cuda_graphs": self._graph_counts(),
                "precision": cfg.precision if self.device.type == "cuda" else "fp32",
            },
        )

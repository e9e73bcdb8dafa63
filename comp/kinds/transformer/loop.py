"""One fold of the seed paper's recipe, resumably. Read it top to bottom:

- `FoldTrainer.__init__` builds what a fold needs: the LDAM margins and DRW weights from the
  fold's training counts, the classifier, LLRD AdamW with warmup and linear decay, FGM;
- `start_or_resume` continues from the fold's checkpoint when it was made from the same data,
  folds and fingerprint, else starts clean;
- `train_step` runs one optimiser step: length-bucketed micro-batches, CE then LDAM/DRW, FGM on
  the word embeddings, clipping after the restore;
- `evaluate_and_checkpoint` scores the validation rows every `eval_every` steps, keeps the best
  model, and saves a checkpoint every `checkpoint_every` steps;
- `run` loops to `train.steps` and returns the best model's validation and test logits.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from comp.kinds import FoldFit, RunInputs
from comp.kinds.transformer.batches import collate, epoch_batches
from comp.kinds.transformer.checkpoints import (
    load_torch,
    rng_state,
    save_torch,
    seed_everything,
    set_rng_state,
)
from comp.kinds.transformer.distributed import SINGLE, Dist, peak_memory_mb, shard, wrap
from comp.kinds.transformer.fgm import FGM
from comp.kinds.transformer.files import BACKBONE, BEST_MODEL, CHECKPOINT
from comp.kinds.transformer.inference import (
    autocast,
    predict_logits,
    save_backbone_files,
)
from comp.kinds.transformer.losses import drw_class_weights, ldam_margins, recipe_loss
from comp.kinds.transformer.model import build_classifier
from comp.kinds.transformer.optim import linear_warmup_decay, llrd_param_groups
from comp.kinds.transformer.token_cache import EncodedTexts
from comp.metrics import macro_f1

MADE_WITH = ("folds_sha256", "train_sha256", "config_sha256")  # a checkpoint's provenance


@dataclass(frozen=True)
class EncodedRun:
    """A run's inputs with their token ids, computed once and shared by every fold."""

    inputs: RunInputs
    tokenizer: object
    train: EncodedTexts
    tests: list[EncodedTexts]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
        TextColumn("{task.fields[rate]:.1f} samples/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


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
    ) -> None:
        config = data.inputs.config
        self.config, self.cfg, self.data, self.fold, self.out = (
            config,
            config.train,
            data,
            fold,
            out,
        )
        self.device, self.console, self.dist = device, console, dist
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
        self.weights = drw_class_weights(counts, beta=cfg.drw_beta).to(device)

        self.model = build_classifier(config, pretrained=True).to(device)
        self.net = wrap(self.model, dist, device)  # what the training passes go through
        if cfg.compile:  # lengths vary batch to batch: one graph with a symbolic length
            self.net = torch.compile(self.net, dynamic=True)
        groups = llrd_param_groups(self.model, cfg.lr, cfg.llrd_decay, cfg.weight_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=device.type == "cuda")
        self.scheduler = linear_warmup_decay(self.optimizer, cfg.steps, cfg.warmup_ratio)
        self.fgm = FGM(self.model) if cfg.fgm else None
        self.pad_id = data.tokenizer.pad_token_id
        self.lengths = data.train.lengths[self.train_rows]
        self.batches_per_epoch = len(epoch_batches(self.lengths, cfg.batch_size, cfg.seed, fold, 0))

        self.step, self.best, self.history = 0, {"score": -1.0, "step": 0}, []
        self.samples = self.tokens = 0
        self.loop_time = 0.0

    # -----------------------------------------------------------------------------------------
    # Start or resume

    def _made_with(self) -> tuple[str, str, str]:
        inputs = self.data.inputs
        return inputs.folds_sha256, inputs.train.sha256, inputs.fingerprint

    def start_or_resume(self) -> bool:
        """Load the fold's checkpoint if it was made from the same data, folds and fingerprint
        (True), else start clean, removing what an earlier attempt left (False)."""
        checkpoint_path, best_path = self.out / CHECKPOINT, self.out / BEST_MODEL
        state = None
        self.dist.barrier()  # every rank decides from the same files
        if checkpoint_path.is_file():
            state = load_torch(checkpoint_path, self.device)
            if tuple(state.get(k) for k in MADE_WITH) != self._made_with():
                self.console.print(
                    f"fold {self.fold}: {checkpoint_path} was made with other data, folds or "
                    "training config; restarting"
                )
                state = None
        self.dist.barrier()
        if state is None:
            if self.dist.main:  # nothing of an earlier attempt may leak in
                checkpoint_path.unlink(missing_ok=True)
                best_path.unlink(missing_ok=True)
                save_backbone_files(self.model, self.data.tokenizer, self.out / BACKBONE)
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        if self.dist.main and not (self.out / BACKBONE / "config.json").is_file():
            save_backbone_files(self.model, self.data.tokenizer, self.out / BACKBONE)
        self.step, self.best, self.history = state["step"], state["best"], state["history"]
        self.console.print(f"fold {self.fold}: resuming from step {self.step} ({checkpoint_path})")
        if best_path.is_file():  # it may be newer than the checkpoint: a kill fell in between
            saved = load_torch(best_path, "cpu", mmap=True)
            if saved["score"] > self.best["score"]:
                self.best = {"score": saved["score"], "step": saved["step"]}
        return True

    # -----------------------------------------------------------------------------------------
    # One optimiser step

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        cfg = self.cfg
        if cfg.loss == "ce":
            return torch.nn.functional.cross_entropy(cfg.ldam_s * logits, targets)
        return recipe_loss(
            logits,
            targets,
            epoch,
            drw_start_epoch=cfg.drw_start_epoch,
            margins=self.margins,
            weights=self.weights,
            s=cfg.ldam_s,
        )

    def _forward(self, inputs: dict) -> torch.Tensor:
        with autocast(self.device):
            return self.net(**inputs).float()

    def _micro_batch(self, rows: np.ndarray, share: float, epoch: int) -> torch.Tensor:
        """Forward and backward of one micro-batch (and FGM's second pass); its loss, detached."""
        cfg, fgm = self.cfg, self.fgm
        inputs = collate(
            self.data.train,
            rows,
            self.pad_id,
            self.device,
            cfg.pad_multiple,
            self.config.model.max_len,
        )
        targets = torch.as_tensor(self.labels[rows], device=self.device)
        before = fgm.weight.grad.clone() if fgm and fgm.weight.grad is not None else None
        loss = share * self._loss(self._forward(inputs), targets, epoch)
        loss.backward()
        if fgm is not None:
            own = fgm.weight.grad if before is None else fgm.weight.grad - before
            if fgm.attack(cfg.fgm_eps, grad=own):
                (share * self._loss(self._forward(inputs), targets, epoch)).backward()
                fgm.restore()
        return loss.detach()

    def train_step(self, batch: np.ndarray, epoch: int) -> float:
        """One optimiser step on the rows of `batch` (this rank's share of it); the batch's
        mean loss. `grad_accum` micro-batches, the same count on every rank (equal shares); a
        batch with fewer rows than ranks is empty everywhere and changes no weight."""
        cfg = self.cfg
        batch_loss = torch.zeros((), device=self.device)  # read once a step
        micro_size = max(1, -(-len(batch) // cfg.grad_accum))
        for start in range(0, len(batch), micro_size):
            rows = batch[start : start + micro_size]
            share = len(rows) / len(batch)  # micro-batch losses add up to the batch mean
            batch_loss += self._micro_batch(rows, share, epoch)
            self.tokens += int(self.data.train.lengths[rows].sum()) * self.dist.world
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.samples += len(batch) * self.dist.world  # every rank trains on an equal share
        return batch_loss.item()

    # -----------------------------------------------------------------------------------------
    # Evaluate and checkpoint

    def validation_logits(self) -> np.ndarray:
        cfg = self.cfg
        return predict_logits(
            self.model,
            self.data.train,
            self.val_rows,
            cfg.eval_batch_size,
            self.pad_id,
            self.device,
            cfg.ldam_s,
        )

    def evaluate(self) -> float:
        logits = self.validation_logits()
        self.model.train()
        y = self.labels[self.val_rows]
        return macro_f1(y, logits.argmax(1), self.config.data.num_labels)

    def _checkpoint_state(self) -> dict:
        inputs = self.data.inputs
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "step": self.step,
            "best": self.best,
            "history": self.history,
            "folds_sha256": inputs.folds_sha256,
            "train_sha256": inputs.train.sha256,
            "config_sha256": inputs.fingerprint,
        }

    def evaluate_and_checkpoint(self, epoch: int, loss: float) -> None:
        """At the evaluation cadence (and the last step) score the validation rows and keep the
        best model; at the checkpoint cadence save everything a resume needs (rank 0)."""
        cfg, step = self.cfg, self.step
        if (step % cfg.eval_every == 0 or step == cfg.steps) and self.dist.main:
            score = self.evaluate()
            self.history.append({"step": step, "epoch": epoch, "loss": loss, "val_macro_f1": score})
            if score > self.best["score"]:
                self.best = {"score": score, "step": step}
                save_torch({**self.best, "model": self.model.state_dict()}, self.out / BEST_MODEL)
        if step % cfg.checkpoint_every == 0 and step < cfg.steps and self.dist.main:
            save_torch(self._checkpoint_state(), self.out / CHECKPOINT)
        if step % cfg.eval_every == 0 or step % cfg.checkpoint_every == 0:
            self.dist.barrier()  # the other ranks wait while rank 0 evaluates and saves

    # -----------------------------------------------------------------------------------------
    # The whole fold

    def run(self) -> FoldFit | None:
        """Train to `train.steps`, then (rank 0) the best model's validation and test logits."""
        cfg = self.cfg
        self.start_or_resume()
        self.model.train()
        order: list[list[int]] = []
        with _progress(self.console) as progress:
            lr = self.scheduler.get_last_lr()[0]
            task = progress.add_task(
                f"fold {self.fold}", total=cfg.steps, completed=self.step, loss=0.0, lr=lr, rate=0.0
            )
            while self.step < cfg.steps:
                tick = time.perf_counter()
                epoch, position = divmod(self.step, self.batches_per_epoch)
                if position == 0 or not order:
                    order = epoch_batches(self.lengths, cfg.batch_size, cfg.seed, self.fold, epoch)
                loss = self.train_step(shard(self.train_rows[order[position]], self.dist), epoch)
                self.loop_time += time.perf_counter() - tick
                rate = self.samples / max(self.loop_time, 1e-9)
                lr = self.scheduler.get_last_lr()[0]
                progress.update(task, advance=1, loss=loss, lr=lr, rate=rate)
                self.evaluate_and_checkpoint(epoch, loss)
        self.dist.barrier()
        if not self.dist.main:
            return None
        return self._best_model_fit()

    def _best_model_fit(self) -> FoldFit:
        self.model.load_state_dict(load_torch(self.out / BEST_MODEL, self.device)["model"])
        cfg, rows = self.cfg, np.arange
        test_logits = [
            predict_logits(
                self.model,
                e,
                rows(len(e)),
                cfg.eval_batch_size,
                self.pad_id,
                self.device,
                cfg.ldam_s,
            )
            for e in self.data.tests
        ]
        seconds = max(self.loop_time, 1e-9)
        return FoldFit(
            self.validation_logits(),
            test_logits,
            samples_per_s=self.samples / seconds,
            tokens_per_s=self.tokens / seconds,
            best_step=self.best["step"],
            history=self.history,
            extra={
                "peak_memory_mb": peak_memory_mb(self.device),
                "device": str(self.device),
                "world_size": self.dist.world,  # processes (torchrun ranks) that trained it
                "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            },
        )

"""The transformer kind's loop (comp.kinds.transformer.loop): each part on its own, then whole
folds through the fold frame."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from rich.console import Console

from comp.config import dump_config
from comp.kinds.transformer.loop import DivergedError, FoldTrainer
from comp.kinds.transformer.model import Classifier
from comp.kinds.transformer.run import encode_run
from comp.layout import METRICS, OOF, fold_dir
from comp.metrics import macro_f1
from comp.neural.batches import collate
from comp.neural.files import BACKBONE, BEST_MODEL, CHECKPOINT, PREVIOUS_CHECKPOINT
from comp.neural.token_cache import EncodedTexts
from comp.runs.frame import fold_fingerprint, load_run_inputs, train_folds
from tests.conftest import TRAINED, demo_config, tiny_bert

QUIET = Console(quiet=True)
CPU = torch.device("cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_logits(path):
    frame = pl.read_parquet(path)
    return frame, frame["logits"].to_numpy()


@pytest.fixture(scope="module")
def encoded(demo_root):
    """The demo run's inputs and token ids, for trainers built by hand."""
    config = demo_config(
        demo_root,
        **{
            "train.experiment": "loop_units",
            "train.steps": 6,
            "train.eval_every": 2,
            "train.checkpoint_every": 3,
        },
    )
    return encode_run(load_run_inputs(config, fold_fingerprint(config)))


def trainer(encoded, out, **train_settings) -> FoldTrainer:
    config = dataclasses.replace(
        encoded.inputs.config, train=dataclasses.replace(encoded.inputs.config.train)
    )
    for key, value in train_settings.items():
        setattr(config.train, key, value)
    inputs = dataclasses.replace(encoded.inputs, config=config)
    out.mkdir(parents=True, exist_ok=True)
    return FoldTrainer(dataclasses.replace(encoded, inputs=inputs), 0, out, CPU, QUIET)


def batch_of(t: FoldTrainer, size: int = 16) -> np.ndarray:
    return t.train_rows[:size]


@pytest.mark.parametrize("step", ["sync_free", "eager"])
def test_train_step_takes_one_optimiser_step(encoded, tmp_path, step):
    t = trainer(encoded, tmp_path, warmup_ratio=0.0, step=step)
    t.start_or_resume()
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    lr_before = t.scheduler.get_last_lr()[0]
    t.train_step(batch_of(t), epoch=0)
    reading = t.read_progress()
    assert np.isfinite(reading.loss) and reading.loss > 0 and t.step == 1 and t.skipped_steps == 0
    assert np.isfinite(reading.grad_norm) and reading.grad_norm > 0
    assert t.samples == 16 and t.tokens == int(encoded.train.lengths[batch_of(t)].sum())
    moved = [n for n, p in t.model.named_parameters() if not torch.equal(p, before[n])]
    assert "head.weight" in moved and any("encoder.layer.1." in n for n in moved)
    # cleared for the next step (the sync-free step keeps its buffers, zeroed)
    assert all(p.grad is None or not p.grad.any() for p in t.model.parameters())
    assert t.scheduler.get_last_lr()[0] < lr_before  # linear decay, one step further


@pytest.mark.parametrize("step", ["sync_free", "eager"])
def test_a_non_finite_step_changes_no_weight_and_is_counted(encoded, tmp_path, step):
    t = trainer(encoded, tmp_path, warmup_ratio=0.0, step=step, max_nonfinite_steps=2)
    t.start_or_resume()
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    with torch.no_grad():
        t.model.head.bias[3] = float("nan")  # every logit row holds a NaN: the loss is NaN
    t.train_step(batch_of(t), epoch=0)
    t.read_progress()
    assert (t.step, t.skipped_steps, t.nonfinite_in_a_row) == (1, 1, 1)
    for name, p in t.model.named_parameters():
        if name != "head.bias":
            assert torch.equal(p, before[name]), name
    t.train_step(batch_of(t), epoch=0)
    with pytest.raises(DivergedError, match="fold 0 diverged at step 2 .*2 steps in a row"):
        t.read_progress()


def without_dropout(t: FoldTrainer) -> FoldTrainer:
    for module in t.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return t


GRADIENT_CHECK = {
    "train.experiment": "gradients",
    "train.fgm": False,  # FGM's norm is per micro-batch by design
    "train.drw_start_epoch": 1,
    "train.batch_size": 24,
}


def step_gradients(config_path: str, epoch: int, world: int = 1) -> dict[str, torch.Tensor]:
    """The gradients one optimiser step would apply, on a fixed batch, with dropout off; run
    as one of `world` gloo ranks when world > 1 (tests/ddp_gradients.py)."""
    from comp.kinds import load_config
    from comp.neural.distributed import Dist

    config = load_config([config_path])
    data = encode_run(load_run_inputs(config, fold_fingerprint(config)))
    rank = torch.distributed.get_rank() if world > 1 else 0
    out = Path(config.train.runs_dir) / f"rank{rank}"
    out.mkdir(parents=True, exist_ok=True)
    t = FoldTrainer(data, 0, out, CPU, QUIET, Dist(rank, world))
    t.model.eval()  # dropout off; the gradients are the same functions of the weights
    batch = t.train_rows[np.random.default_rng(0).permutation(len(t.train_rows))[:24]]
    return gradients_of(t, batch, epoch)


def step_figures(config_path: str, epoch: int, world: int = 1) -> dict:
    """The gradients of one step on the fixed batch (`step_gradients`) and the loss a second
    trainer logs for that step (its `read_progress`)."""
    from comp.kinds import load_config
    from comp.neural.distributed import Dist

    grads = step_gradients(config_path, epoch, world)
    config = load_config([config_path])
    data = encode_run(load_run_inputs(config, fold_fingerprint(config)))
    rank = torch.distributed.get_rank() if world > 1 else 0
    t = FoldTrainer(data, 0, Path(config.train.runs_dir) / f"loss{rank}", CPU, QUIET,
                    Dist(rank, world))  # fmt: skip
    t.model.eval()
    t.train_step(t.train_rows[np.random.default_rng(0).permutation(len(t.train_rows))[:24]], epoch)
    return {"grads": grads, "loss": t.read_progress().loss}


def gradients_of(t: FoldTrainer, batch: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
    """The gradients the trainer's step accumulates for `batch`, before its update."""
    if t.cfg.step == "eager":
        t.stepper.gradients(batch, epoch)
    else:
        t.stepper.gradients(t.stepper.prepare(batch, epoch).to_device(CPU))
    return {n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    ("epoch", "accum", "rows"),
    [(0, 1, 24), (1, 1, 24), (1, 2, 24), (1, 4, 22)],
    ids=["CE", "LDAM-DRW", "LDAM-DRW, 2 micro-batches", "LDAM-DRW, 6+6+6+4 rows"],
)
def test_the_sync_free_step_takes_the_eager_steps_gradient(encoded, tmp_path, epoch, accum, rows):
    """FGM on, dropout off: the same gradients to 1e-6 of their scale. 22 rows in 4
    micro-batches are 6, 6, 6 and 4; the sync-free step pads the last to 6 with rows that
    count for nothing (target -100)."""
    grads = {}
    for step in ("eager", "sync_free"):
        t = trainer(encoded, tmp_path / step, grad_accum=accum, drw_start_epoch=1, step=step)
        t.model.eval()
        batch = t.train_rows[:rows]
        grads[step] = gradients_of(t, batch, epoch)
        if step == "sync_free":
            padding = (t.stepper.prepare(batch, epoch).arrays["targets"] == -100).sum()
            assert padding == (2 if rows == 22 else 0)
    assert_same_gradients(grads["eager"], grads["sync_free"], rtol=1e-6)


def assert_same_gradients(a: dict, b: dict, rtol: float = 1e-4) -> None:
    """Equal to `rtol` of each value, or to 1e-6 of the largest gradient value."""
    assert a.keys() == b.keys()
    scale = max(float(g.abs().max()) for g in a.values())
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=rtol, atol=1e-6 * scale, msg=name)


@pytest.mark.parametrize("epoch", [0, 3], ids=["CE phase", "LDAM-DRW phase"])
def test_micro_batches_and_ranks_give_the_whole_batch_gradient(demo_root, tmp_path, epoch):
    """The DRW weights normalise over the whole batch: grad_accum 2 and 4, and two gloo ranks
    of 2 micro-batches each (the first without DDP's all-reduce), take the step grad_accum 1
    takes. (Normalised per micro-batch, the LDAM-DRW phase differed by several per cent.)"""
    paths = {}
    for accum in (1, 2, 4):
        settings = {**GRADIENT_CHECK, "train.grad_accum": accum}
        config = demo_config(demo_root, **settings, **{"train.runs_dir": tmp_path / str(accum)})
        paths[accum] = tmp_path / f"accum{accum}.yaml"
        paths[accum].write_text(dump_config(config), encoding="utf-8")
    whole = step_gradients(str(paths[1]), epoch)
    for accum in (2, 4):
        assert_same_gradients(whole, step_gradients(str(paths[accum]), epoch))

    port, saved = str(free_port()), tmp_path / "ranks.pt"
    script = Path(__file__).with_name("ddp_gradients.py")
    ranks = [
        subprocess.Popen([sys.executable, str(script), str(paths[2]), str(epoch), str(saved),
                          str(rank), port], env={**os.environ, "OMP_NUM_THREADS": "1"})
        for rank in (0, 1)
    ]  # fmt: skip
    assert [rank.wait(timeout=300) for rank in ranks] == [0, 0]
    assert_same_gradients(whole, torch.load(saved)["grads"])


@pytest.mark.parametrize(
    ("step", "accum"),
    [("sync_free", 1), ("sync_free", 2), ("eager", 2)],
    ids=["sync-free", "sync-free, 2 micro-batches a rank", "eager, 2 micro-batches a rank"],
)
def test_fgm_on_two_ranks_takes_the_whole_batch_step_and_logs_its_loss(
    demo_root, tmp_path, step, accum
):
    """FGM on, the LDAM-DRW phase: two gloo ranks apply the gradient one process applies to the
    whole batch (FGM's norm over every rank's embedding rows), and log the batch's loss, not
    rank 0's share."""
    settings = {**GRADIENT_CHECK, "train.fgm": True, "train.fgm_eps": 0.5, "train.step": step,
                "train.grad_accum": accum, "train.runs_dir": tmp_path}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(demo_config(demo_root, **settings)), encoding="utf-8")
    whole = step_figures(str(path), epoch=1)
    port, saved = str(free_port()), tmp_path / "ranks.pt"
    script = Path(__file__).with_name("ddp_gradients.py")
    ranks = [
        subprocess.Popen([sys.executable, str(script), str(path), "1", str(saved), str(rank),
                          port], env={**os.environ, "OMP_NUM_THREADS": "1"})
        for rank in (0, 1)
    ]  # fmt: skip
    assert [rank.wait(timeout=300) for rank in ranks] == [0, 0]
    both = torch.load(saved)
    assert_same_gradients(whole["grads"], both["grads"], rtol=1e-6)
    assert both["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_start_or_resume_restores_the_state_a_checkpoint_holds(encoded, tmp_path):
    first = trainer(encoded, tmp_path)
    assert first.start_or_resume() is False
    assert (tmp_path / BACKBONE / "config.json").is_file()
    for _ in range(3):
        first.train_step(batch_of(first), epoch=0)
        first.evaluate_and_checkpoint(epoch=0)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == 3

    second = trainer(encoded, tmp_path)
    assert second.start_or_resume() is True
    assert (second.step, second.best) == (3, first.best)
    assert second.history.as_dict() == first.history.as_dict() and first.history.val
    for name, value in second.model.state_dict().items():
        assert torch.equal(value, first.model.state_dict()[name]), name
    assert second.scheduler.get_last_lr() == first.scheduler.get_last_lr()
    assert (
        second.optimizer.state_dict()["state"].keys()
        == first.optimizer.state_dict()["state"].keys()
    )


def test_start_or_resume_refuses_a_checkpoint_of_another_config(encoded, tmp_path):
    first = trainer(encoded, tmp_path)
    first.start_or_resume()
    for _ in range(3):
        first.train_step(batch_of(first), epoch=0)
        first.evaluate_and_checkpoint(epoch=0)
    assert (tmp_path / CHECKPOINT).is_file() and (tmp_path / BEST_MODEL).is_file()
    other = trainer(encoded, tmp_path)
    other.data = dataclasses.replace(
        other.data, inputs=dataclasses.replace(other.data.inputs, fingerprint="another config")
    )
    assert other.start_or_resume() is False and other.step == 0
    # nothing of the earlier attempt is left to leak into this one
    assert not (tmp_path / CHECKPOINT).exists() and not (tmp_path / BEST_MODEL).exists()


def test_evaluate_and_checkpoint_follow_their_cadences(encoded, tmp_path):
    t = trainer(encoded, tmp_path, steps=6, eval_every=2, checkpoint_every=3)
    t.start_or_resume()
    saved_at = []
    for step in range(1, 7):
        t.step = step  # the cadence alone, without training
        t.evaluate_and_checkpoint(epoch=0)
        if (tmp_path / CHECKPOINT).is_file():
            saved_at.append(torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"])
            (tmp_path / CHECKPOINT).unlink()
    assert [h["step"] for h in t.history.val] == [2, 4, 6]
    assert saved_at == [3]  # not at the last step: the fold's outputs replace it
    best = torch.load(tmp_path / BEST_MODEL, weights_only=True)
    assert best["step"] == t.best["step"] and best["score"] == t.best["score"]
    assert t.best["score"] == max(h["val_macro_f1"] for h in t.history.val)


def test_two_fold_run_writes_the_transformers_files_and_learns(trained_root):
    config = demo_config(trained_root, **TRAINED)
    chance = 1 / config.data.num_labels
    for fold in (0, 1):
        out = fold_dir(config, fold)
        metrics = json.loads((out / METRICS).read_text())
        assert metrics["val_macro_f1"] > 5 * chance, metrics["history"]
        losses = [h["loss"] for h in metrics["history"]["loss"]]
        assert len(losses) == 200 // config.train.log_every  # every log_every steps
        assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
        val = metrics["history"]["val"]
        assert [h["step"] for h in val] == [50, 100, 150, 200]
        assert max(h["val_macro_f1"] for h in val) == metrics["val_macro_f1"]
        assert metrics["world_size"] == 1 and metrics["device"] == "cpu"
        assert (out / BEST_MODEL).is_file() and (out / BACKBONE / "config.json").is_file()
        assert not (out / CHECKPOINT).exists()
        oof, logits = read_logits(out / OOF)
        assert macro_f1(oof["label"].to_numpy(), logits.argmax(1), 82) == pytest.approx(
            metrics["val_macro_f1"]
        )


class Killed(Exception):
    pass


def test_killed_and_resumed_run_matches_uninterrupted(demo_root, monkeypatch):
    settings = {
        "train.steps": 12,
        "train.eval_every": 3,
        "train.checkpoint_every": 4,
        "train.grad_accum": 2,
    }
    whole = demo_config(demo_root, **{"train.experiment": "whole", **settings})
    train_folds(whole, [0], "cpu", False, QUIET)

    resumed = demo_config(demo_root, **{"train.experiment": "resumed", **settings})
    real_clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def dying_clip(*args, **kwargs):  # called once per optimizer step, after the backward passes
        calls["n"] += 1
        if calls["n"] == 7:
            raise Killed
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dying_clip)
    with pytest.raises(Killed):
        train_folds(resumed, [0], "cpu", False, QUIET)
    checkpoint = torch.load(fold_dir(resumed, 0) / CHECKPOINT, weights_only=True)
    assert checkpoint["step"] == 4
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    train_folds(resumed, [0], "cpu", False, QUIET)

    for name in ("oof.parquet", "test_logits.parquet"):
        _, a = read_logits(fold_dir(whole, 0) / name)
        _, b = read_logits(fold_dir(resumed, 0) / name)
        assert np.array_equal(a, b), name
    a = json.loads((fold_dir(whole, 0) / METRICS).read_text())
    b = json.loads((fold_dir(resumed, 0) / METRICS).read_text())
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"]


def test_padding_to_a_multiple_leaves_the_logits_unchanged():
    torch.manual_seed(0)
    backbone = tiny_bert(hidden=32, dropout=0.1)
    model = Classifier(backbone, num_labels=5, dropout=0.1, head="linear").eval()
    lengths = [7, 3, 12]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rng = np.random.default_rng(0)
    encoded = EncodedTexts(
        ids=rng.integers(1, 50, offsets[-1]).astype(np.int32),
        type_ids=(rng.random(offsets[-1]) < 0.5).astype(np.int8),
        offsets=offsets,
    )
    cpu = torch.device("cpu")
    tight = collate(encoded, [0, 1, 2], 0, cpu)
    rounded = collate(encoded, [0, 1, 2], 0, cpu, multiple=16, limit=64)
    assert tight["input_ids"].shape[1] == 12 and rounded["input_ids"].shape[1] == 16
    with torch.no_grad():
        torch.testing.assert_close(model(**rounded), model(**tight), atol=1e-5, rtol=1e-5)


def test_evaluation_pads_to_the_multiple_but_never_past_max_len():
    from comp.config import Config
    from comp.neural.inference import Batching, predict_logits

    config = Config()
    config.model.max_len, config.train.pad_multiple = 50, 48  # 48 rounds 49 up to 96
    batching = Batching.of(config, 0, torch.device("cpu"))
    assert (batching.multiple, batching.limit) == (48, 50)
    lengths = [49, 3]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    encoded = EncodedTexts(
        ids=np.ones(offsets[-1], dtype=np.int32),
        type_ids=np.zeros(offsets[-1], dtype=np.int8),
        offsets=offsets,
    )
    widths = []

    def model(input_ids, **_):
        widths.append(input_ids.shape[1])
        return torch.zeros(len(input_ids), 5)

    model.eval = lambda: None
    predict_logits(model, encoded, np.arange(2), batching, 1.0)
    assert widths == [50]


def test_compile_and_pad_multiple_reach_the_training_passes(demo_root, monkeypatch):
    from comp.kinds.transformer.step import SyncFreeStep

    compiled, shapes = [], []
    monkeypatch.setattr(
        torch, "compile", lambda module, **options: compiled.append(options) or module
    )
    real_compute = SyncFreeStep.compute

    def recording_compute(self, buffers):
        shapes.append(buffers.key)
        return real_compute(self, buffers)

    monkeypatch.setattr(SyncFreeStep, "compute", recording_compute)
    config = demo_config(
        demo_root,
        **{
            "train.experiment": "compiled",
            "train.steps": 3,
            "train.eval_every": 3,
            "train.compile": True,
            "train.pad_multiple": 32,
            "model.max_len": 40,
            "model.answer_min_tokens": 10,
        },
    )
    train_folds(config, [0], "cpu", False, QUIET)
    assert compiled == [{"dynamic": True}]
    assert len(shapes) == 3 and all(shape[:2] == (1, 32) for shape in shapes)  # batch 32
    # up to 32 tokens: 32; longer (at most max_len 40): 64 capped at max_len
    widths = {shape[2] for shape in shapes}
    assert widths <= {32, 40} and 40 in widths, widths


def test_the_head_runs_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    model = Classifier(tiny_bert(hidden=32), num_labels=82, dropout=0.0, head="linear").eval()
    ids = torch.randint(1, 50, (4, 9))
    mask = torch.ones_like(ids)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids, mask)
        cls = model.backbone(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    assert logits.dtype == torch.float32
    expected = torch.nn.functional.linear(cls.float(), model.head.weight, model.head.bias)
    assert torch.equal(logits, expected)  # not a bf16 matmul rounded up to fp32
    assert not torch.equal(logits, logits.bfloat16().float())


def test_mean_pooling_averages_the_real_tokens_and_ignores_the_padding():
    torch.manual_seed(0)
    model = Classifier(tiny_bert(hidden=32), 5, dropout=0.0, head="linear", pooling="mean").eval()
    ids = torch.randint(1, 50, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.no_grad():
        logits = model(ids, mask)
        hidden = model.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        short = model(ids[1:, :5], mask[1:, :5])
        broadcast = model(ids, mask[:, None, None, :].bool())  # the training step's mask
    means = torch.stack([hidden[0].mean(0), hidden[1, :5].mean(0)])
    torch.testing.assert_close(logits, model.head(means))
    torch.testing.assert_close(logits[1:], short, atol=1e-5, rtol=1e-5)  # padding changes nothing
    torch.testing.assert_close(broadcast, logits)


def test_unreadable_checkpoints_fall_back_to_the_previous_one_then_to_a_clean_start(
    encoded, tmp_path
):
    first = trainer(encoded, tmp_path, checkpoint_every=2)
    first.start_or_resume()
    for _ in range(4):
        first.train_step(batch_of(first), epoch=0)
        first.evaluate_and_checkpoint(epoch=0)
    assert torch.load(tmp_path / PREVIOUS_CHECKPOINT, weights_only=True)["step"] == 2
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    second = trainer(encoded, tmp_path, checkpoint_every=2)
    assert second.start_or_resume() is True and second.step == 2
    assert not (tmp_path / CHECKPOINT).exists()  # the next save keeps the good one as previous

    (tmp_path / PREVIOUS_CHECKPOINT).write_bytes(b"")
    third = trainer(encoded, tmp_path, checkpoint_every=2)
    third.console = Console(record=True, width=200)
    assert third.start_or_resume() is False and third.step == 0
    said = third.console.export_text()
    assert f"{tmp_path / PREVIOUS_CHECKPOINT} is unreadable" in said and "no other is left" in said
    assert "no readable checkpoint; restarting from scratch" in said


def test_graphs_are_wanted_only_in_a_single_cuda_process():
    from comp.kinds.transformer.graphs import graphs_wanted

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert graphs_wanted("auto", cuda, 1) and graphs_wanted("true", cuda, 1)
    assert not graphs_wanted("false", cuda, 1)
    assert not graphs_wanted("auto", cpu, 1) and not graphs_wanted("true", cpu, 1)
    assert not graphs_wanted("true", cuda, 2)  # DDP's all-reduces stay eager


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_graphed_steps_train_as_the_sync_free_steps_do(encoded, tmp_path):
    """Warm-up, capture and replays of one step shape end where the same steps without graphs
    end (fp32, dropout off, FGM and LDAM-DRW on)."""
    cuda = torch.device("cuda")
    weights = {}
    for graphs in ("false", "true"):
        t = trainer(encoded, tmp_path / graphs, cuda_graphs=graphs, precision="fp32",
                    drw_start_epoch=0, warmup_ratio=0.0)  # fmt: skip
        t = FoldTrainer(t.data, 0, t.out, cuda, QUIET)
        t.model.eval()
        t.start_or_resume()
        for _ in range(5):
            t.train_step(t.train_rows[:32], epoch=1)
        t.read_progress()
        if graphs == "true":
            counts = t._graph_counts()
            assert counts == {"captured": 1, "replays": 4, "failed": 0}, counts
        weights[graphs] = {n: p.detach().cpu() for n, p in t.model.named_parameters()}
    for name, value in weights["false"].items():
        torch.testing.assert_close(weights["true"][name], value, rtol=1e-5, atol=1e-6, msg=name)

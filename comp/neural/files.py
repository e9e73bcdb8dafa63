"""The transformer kind's own files in a fold folder (light: the fold frame reads these names
without importing torch)."""

from pathlib import Path

from comp.io import sha256_folder

CHECKPOINT = "checkpoint.pt"  # model, optimiser, scheduler, RNG states, step, best, history
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before: resumed from if the last is unreadable
BEST_MODEL = "best_model.pt"  # the best evaluation's weights, step and score
BACKBONE = "backbone"  # the backbone's config and tokenizer, beside best_model.pt

# `comp pretrain`: beside the weights and tokenizer in pretrain.out_dir
PRETRAIN_CONFIG = "pretrain_config.yaml"  # the resolved config that made the folder
PRETRAIN_METRICS = "pretrain_metrics.json"  # fingerprint, losses, time; written last
TENSORBOARD = "tensorboard"  # with train.tensorboard: the pretraining events
PRETRAIN_RECORDS = (PRETRAIN_CONFIG, PRETRAIN_METRICS, TENSORBOARD)  # describe the weights,
# they do not shape them: left out of the backbone's content hash
WORK_SUFFIX = ".work"  # <out_dir>.work/: checkpoints, token cache and lock while it runs


def backbone_sha256(backbone: str) -> str:
    """The content hash of a backbone that is a local folder (its records left out: they
    describe the weights, they do not shape them); "" for a hub id."""
    return sha256_folder(backbone, PRETRAIN_RECORDS) if Path(backbone).is_dir() else ""

"""The transformer kind's own files in a fold folder (light: the fold frame reads these names
without importing torch)."""

CHECKPOINT = "checkpoint.pt"  # model, optimiser, scheduler, RNG states, step, best, history
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before: resumed from if the last is unreadable
BEST_MODEL = "best_model.pt"  # the best evaluation's weights, step and score
BACKBONE = "backbone"  # the backbone's config and tokenizer, beside best_model.pt

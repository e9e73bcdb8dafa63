"""`comp pretrain`: continued masked-LM pretraining of a backbone on the competition's own text,
on the shared neural parts (`comp.neural`): `masking` (which tokens a batch predicts), `mlm` (the
resumable loop) and `run` (fingerprint, lock, text, and the backbone folder written atomically)."""

"""The torch parts every neural kind and tool shares: loading backbones and tokenizers, encoding
question/answer pairs and caching their token ids, batches, the device and torchrun, checkpoints,
running a model over rows, and a finished fold's encoder. Model kinds and `comp pretrain` build on
these; nothing here knows a kind."""

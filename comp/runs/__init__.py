"""The fold frame shared by every model kind: paths and artifact names (`layout`), the per-fold
outputs (`outputs`), training the folds (`frame`), one process per GPU (`launch`) and late test
sets (`predict`)."""

"""The built-in demo competition: AbjadMed's files, columns, class profile and text format,
generated deterministically so that everything runs offline (`categories`, `generator`,
`writer`)."""

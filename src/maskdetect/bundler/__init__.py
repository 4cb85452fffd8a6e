"""Building model bundles: a bundle from a training run (`build.create_bundle`), and face verifiers
fitted on a detector's candidates over labelled photos (`build.fit_bundle_verifier`: mined by
`candidates`, fitted by `fit`). The commands `maskdetect bundle` and `maskdetect fit-verifier`."""

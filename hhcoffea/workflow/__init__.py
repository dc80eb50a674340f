"""Running jobs: job files, the coffea Runner on the executor a job names, outputs, provenance
and plots. Sits above the processors in the import graph (it composes them); the CLI sits above it."""

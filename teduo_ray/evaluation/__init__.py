"""Online evaluation: policies run in live environments held by Ray actors."""

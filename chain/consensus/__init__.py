"""BFT consensus (Tendermint family): a pure state machine, its messages and evidence."""

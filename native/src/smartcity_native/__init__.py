"""Native hot paths of the smart-city chain, each optional (see chain.smt for the tree's)."""

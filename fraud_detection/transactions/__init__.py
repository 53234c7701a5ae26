"""Raw transactions: the canonical frame, the mapping from a file's columns to it, its row contract, and a
seeded generator whose fraud lives in each card's and terminal's history (docs/transactions.md)."""

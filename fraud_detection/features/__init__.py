"""History features of raw transactions: definitions, the window arithmetic, offline and online computation."""

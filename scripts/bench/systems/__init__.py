"""One module per measured system: its producer, its worker and its key namespace."""

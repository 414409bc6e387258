# examples (filled in)

# man pages (filled in)

"""Reader studies: built on the tiles of the generation app (the reader-study issue adds models)."""

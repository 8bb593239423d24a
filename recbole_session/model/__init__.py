"""Model families; one model per file, named after the class in lower case."""

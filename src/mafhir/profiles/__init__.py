"""Profile validation from the StructureDefinitions (the engine lands from branch w1)."""

"""Example projects' data generators (the project files live in the repository's examples/)."""

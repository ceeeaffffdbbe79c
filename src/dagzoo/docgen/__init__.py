"""Documentation generated from the code and from results trees (`dagzoo docs`)."""

"""Reliability tests (issue 7): bad inputs on every public entry point, properties, state, memory, files."""

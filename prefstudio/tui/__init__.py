"""The Textual front end; the only part of prefstudio that imports textual."""
